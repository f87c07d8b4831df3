//! oxid: an OpenID Connect Provider.
//!
//! Layout: `model` is the shared vocabulary (plain data, no I/O); `protocol` holds the rules (pure) and
//! `jose` the keys and JWTs, both over the model; `store` persists the model behind traits; `http` the
//! handlers, `ui` the pages, `cli` and `server` the binary's surface. `layers` tests that rule.

pub mod audit;
pub mod backchannel;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod fetch;
pub mod http;
pub mod jose;
pub mod key_management;
pub mod mail;
pub mod model;
pub mod passkeys;
pub mod password;
pub mod protocol;
pub mod registration;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod ui;

#[cfg(test)]
mod layers;
