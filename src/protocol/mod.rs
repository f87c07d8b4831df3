//! Protocol logic, free of HTTP and storage: request validation, decisions, token contents.

pub mod authorize;
pub mod claims;
pub mod device;
pub mod email_link;
pub mod error;
pub mod id_token;
pub mod logout;
pub mod params;
pub mod pkce;
pub mod registration;
pub mod subject;
pub mod totp;

pub use error::{ErrorCode, OAuthError};
pub use params::Params;
