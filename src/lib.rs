//! oxid: an OpenID Connect Provider.
//!
//! Layout: `protocol` holds the rules (pure), `http` the handlers, `store` the persistence behind
//! traits, `jose` the keys and JWTs, `ui` the pages, `cli` and `server` the binary's surface.

pub mod cli;
pub mod config;
pub mod crypto;
pub mod fetch;
pub mod http;
pub mod jose;
pub mod password;
pub mod protocol;
pub mod registration;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod types;
pub mod ui;
