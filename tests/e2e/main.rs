//! End-to-end tests: real oxid servers (SQLite, or PostgreSQL when `TEST_POSTGRES_URL` is set) driven
//! over HTTP by the `openidconnect` RP library, a cookie-keeping HTTP client, the `oxid` binary and
//! headless Chromium. One test binary for all of them: one link, one build artefact, and the test
//! keys made once per run.

mod common;

mod accounts;
mod authorize_errors;
mod browser;
mod ciba;
mod claims;
mod cli;
mod code_flow;
mod device;
mod dpop;
mod encryption;
mod implicit_hybrid;
mod locales;
mod login_pages;
mod logout;
mod mail;
mod mfa;
mod nodes;
mod operations;
mod par;
mod passkeys;
mod registration;
mod request_objects;
mod resources;
mod response_modes;
mod revocation;
mod signup;
mod subjects;
mod third_party_login;
mod token_errors;
mod transport;
mod webfinger;
