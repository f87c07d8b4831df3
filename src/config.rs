//! Settings: defaults, then an optional TOML file, then `OXID_<NAME>` environment variables.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

const ENV_PREFIX: &str = "OXID_";

/// Every setting's name.
fn setting_names() -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The setting name closest to `name`, if one is close enough to be a likely typo.
fn closest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), k.as_str()))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// A figment error as an operator needs it: the setting, where it came from (`file` as the operator
/// named it), and a suggestion.
fn explain(error: figment::Error, known: &[String], file: Option<&Path>) -> ConfigError {
    use figment::error::Kind;
    let from_file = error.metadata.as_ref().and_then(|m| m.source.as_ref()).and_then(|s| s.file_path()).is_some();
    let source = file.filter(|_| from_file).map(|f| format!(" in {}", f.display())).unwrap_or_default();
    match &error.kind {
        Kind::UnknownField(field, _) => {
            let hint = closest(field, known).map(|k| format!("; did you mean `{k}`?")).unwrap_or_default();
            let line = file.filter(|_| from_file).and_then(|f| line_of_key(f, field)).map(|n| format!(", line {n}"));
            ConfigError(format!("unknown setting `{field}`{source}{}{hint}", line.unwrap_or_default()))
        }
        // TOML syntax errors keep their own lines (they point at the place).
        Kind::Message(message) => ConfigError(format!("{message}{source}")),
        _ => {
            let key = error.path.last().map(|k| format!("setting `{k}`: ")).unwrap_or_default();
            ConfigError(format!("{key}{}{source}", error.kind))
        }
    }
}

/// The line (from 1) on which the TOML file at `path` sets the top-level `key` (figment keeps no lines).
fn line_of_key(path: &Path, key: &str) -> Option<usize> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            line.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|index| index + 1)
}

/// `IP:PORT`, or `HOST:PORT` resolved now (`localhost:8080`).
fn socket_address<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    use std::net::ToSocketAddrs;
    let text = String::deserialize(deserializer)?;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let resolved = text.to_socket_addrs().ok().and_then(|mut addrs| addrs.next());
    resolved.ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not an IP:PORT or HOST:PORT address")))
}

/// A configuration that cannot be used; shown to the operator as one line, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(String),
}

/// Who may register clients over HTTP (Dynamic Client Registration, RFC 7591 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationPolicy {
    /// No registration endpoint.
    Off,
    /// With an initial access token made by `oxid registration token create`.
    Token,
    /// Anyone, within `registration_max_per_ip`.
    Open,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The issuer identifier (Discovery 3: https URL without query or fragment; http allowed for loopback).
    pub issuer: String,
    /// The address the HTTP server binds to (`IP:PORT`, or `HOST:PORT` resolved at start).
    #[serde(deserialize_with = "socket_address")]
    pub listen: SocketAddr,
    /// `sqlite://PATH` (created if missing) or `postgres://USER:PASSWORD@HOST/DB`.
    pub database_url: String,
    /// PostgreSQL: connections this node keeps to the database at most. Every node's count together must
    /// stay below the server's `max_connections` (100 by default).
    pub database_pool_size: u32,
    /// Seconds an authorization code stays valid (RFC 6749 4.1.2 recommends at most 10 minutes).
    pub code_lifetime: u64,
    pub access_token_lifetime: u64,
    pub id_token_lifetime: u64,
    pub refresh_token_lifetime: u64,
    /// Seconds a browser session lasts after login.
    pub session_lifetime: u64,
    /// Seconds a pending authorization request (login/consent in progress) stays valid.
    pub interaction_lifetime: u64,
    /// Failed logins per account, and per client IP, allowed within `login_throttle_window`.
    pub login_max_failures_per_account: u32,
    pub login_max_failures_per_ip: u32,
    pub login_throttle_window: u64,
    /// Require PKCE from confidential clients too (RFC 9700 2.1.1 recommends it).
    pub require_pkce_for_all_clients: bool,
    /// Directory with templates that override the built-in pages (same file names).
    pub templates_dir: Option<PathBuf>,
    pub log_format: LogFormat,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Seconds a client has to send a request's headers; also how long an idle kept-alive connection
    /// stays open.
    pub header_read_timeout: u64,
    /// Seconds a request body may pause between pieces before the request ends with 408.
    pub body_read_timeout: u64,
    /// Connections served at once (keep it below the process's file-descriptor limit); more wait.
    pub max_connections: usize,
    /// Addresses of reverse proxies whose `X-Forwarded-For` is believed (for per-IP login throttling).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Scopes and the user claims each releases, replacing Core 5.4's entry for a standard scope or
    /// adding a custom scope (TOML: `[scope_claims]` then `groups = ["groups"]`).
    pub scope_claims: BTreeMap<String, Vec<String>>,
    /// Offer self-service sign-up (`prompt=create`, and a link on the login page).
    pub self_registration: bool,
    /// Accounts one client IP may create within `login_throttle_window`.
    pub signup_max_per_ip: u32,
    /// Sign-in requests one client IP may leave waiting (for a login or consent) per
    /// `interaction_lifetime`: what unauthenticated requests can make the OP store is bounded.
    pub pending_requests_per_ip: u32,
    /// Let the OP fetch client documents (jwks_uri, request_uri, sector_identifier_uri) from this machine
    /// over plain http. For development and tests only: it opens the OP's own loopback services to
    /// whoever can register those URLs.
    pub fetch_allow_loopback: bool,
    /// Seconds audit events are kept.
    pub audit_retention: u64,
    /// Seconds expired codes, tokens, sessions, pending requests and one-time values are kept (for
    /// forensics) before the sweeper deletes them.
    pub expired_rows_kept: u64,
    /// Seconds between sweeps (one node sweeps per interval).
    pub sweep_interval: u64,
    /// Seconds a node keeps clients and resource servers it read in memory: a change made on another
    /// node or with the CLI takes effect here within this time (0: read them on every request).
    pub record_cache_ttl: u64,
    /// Seconds a new signing key is published before it signs (`keys rotate`, scheduled rotation): relying
    /// parties that cache the JWK Set learn it first.
    pub signing_key_publish_ahead: u64,
    /// Rotate every algorithm's signing key after this many seconds (0: only when `keys rotate` says so).
    pub signing_key_rotation_period: u64,
    /// The authentication context class reference (Core 2 `acr`) a password login achieves, named as
    /// the operator's relying parties expect it.
    pub password_acr: String,
    /// The `acr` of a login with a password and a second factor (an authenticator's one-time code).
    pub mfa_acr: String,
    /// The `acr` of a login in which a passkey took part (phishing-resistant: the authenticator signs
    /// for this site's origin only).
    pub phishing_resistant_acr: String,
    /// The WebAuthn relying party id passkeys are made for: the issuer's host by default (a domain
    /// name; an issuer on an IP address has no passkeys unless this names one, e.g. `localhost`).
    pub webauthn_rp_id: Option<String>,
    /// Every sign-in needs a passkey (the phishing-resistant level); users without one add one then
    /// and there when `second_factor_enrolment` allows. Needs passkeys (a domain issuer or `webauthn_rp_id`).
    pub require_passkey: bool,
    /// Every sign-in needs a second factor (per client: `client add --require-acr` with `mfa_acr`).
    pub require_second_factor: bool,
    /// A user without a second factor, signing in where one is required, sets one up then and there;
    /// `false`: `unmet_authentication_requirements`.
    pub second_factor_enrolment: bool,
    /// Logout also ends the grants given `offline_access` through the session (Back-Channel Logout 2.7
    /// leaves them by default: offline access is meant to outlive the session).
    pub logout_revokes_offline_access: bool,
    /// Seconds a Back-Channel Logout notification is retried (with exponential backoff) before it is
    /// given up as undeliverable.
    pub backchannel_logout_retry_period: u64,
    /// Seconds the OP waits for a relying party's answer to one Back-Channel Logout request.
    pub backchannel_logout_timeout: u64,
    /// The resource server access tokens are for when a request names none (RFC 8707); none: tokens
    /// without an audience, for the OP's own endpoints.
    pub default_resource: Option<String>,
    /// DPoP proofs must carry a server nonce (RFC 9449 8), given in `DPoP-Nonce` and valid on every node.
    pub dpop_nonce_required: bool,
    /// Every client's authorization requests must be pushed first (RFC 9126 5).
    pub require_pushed_authorization_requests: bool,
    /// Dynamic Client Registration: `off`, `token` (an initial access token is needed) or `open`.
    pub registration: RegistrationPolicy,
    /// With `registration = "open"`: clients one client IP may register within `login_throttle_window`.
    pub registration_max_per_ip: u32,
    /// Issuers of software statements (RFC 7591 2.3) the OP trusts, each with the URL of its JWK Set
    /// (TOML: `[registration_trusted_software_issuers]` then `"https://issuer.example" = "https://issuer.example/jwks.json"`).
    pub registration_trusted_software_issuers: BTreeMap<String, String>,
    /// The SMTP server the OP's mail goes through (password-reset and email-verification links):
    /// `smtp://HOST:PORT` (unencrypted, for a relay on this machine), `smtp://USER:PASSWORD@HOST:587?tls=required`
    /// (STARTTLS) or `smtps://USER:PASSWORD@HOST` (TLS). Without it those pages are off.
    pub smtp_url: Option<String>,
    /// The sender of the OP's mail (`Example ID <no-reply@example.com>`); by default `no-reply@` the
    /// issuer's host.
    pub mail_from: Option<String>,
    /// Seconds a password-reset link works.
    pub password_reset_lifetime: u64,
    /// Seconds an email-verification link works.
    pub email_verification_lifetime: u64,
    /// Mails one address is sent within `login_throttle_window`, and mails one client IP may ask for.
    pub mail_max_per_address: u32,
    pub mail_max_per_ip: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080".into(),
            listen: "127.0.0.1:8080".parse().expect("valid literal"),
            database_url: "sqlite://oxid-data/oxid.db".into(),
            database_pool_size: 32,
            code_lifetime: 60,
            access_token_lifetime: 3600,
            id_token_lifetime: 3600,
            refresh_token_lifetime: 30 * 24 * 3600,
            session_lifetime: 12 * 3600,
            interaction_lifetime: 30 * 60,
            login_max_failures_per_account: 5,
            login_max_failures_per_ip: 50,
            login_throttle_window: 15 * 60,
            require_pkce_for_all_clients: false,
            templates_dir: None,
            log_format: LogFormat::Text,
            max_body_bytes: 64 * 1024,
            header_read_timeout: 10,
            body_read_timeout: 10,
            max_connections: 1000,
            trusted_proxies: Vec::new(),
            scope_claims: BTreeMap::new(),
            self_registration: true,
            signup_max_per_ip: 10,
            pending_requests_per_ip: 1000,
            password_acr: "urn:oxid:acr:password".into(),
            mfa_acr: "urn:oxid:acr:mfa".into(),
            phishing_resistant_acr: "urn:oxid:acr:phishing-resistant".into(),
            webauthn_rp_id: None,
            require_second_factor: false,
            require_passkey: false,
            second_factor_enrolment: true,
            signing_key_publish_ahead: 3600,
            audit_retention: 90 * 24 * 3600,
            expired_rows_kept: 3600,
            sweep_interval: 60,
            record_cache_ttl: 5,
            signing_key_rotation_period: 0,
            fetch_allow_loopback: false,
            logout_revokes_offline_access: false,
            backchannel_logout_retry_period: 24 * 3600,
            backchannel_logout_timeout: 5,
            require_pushed_authorization_requests: false,
            dpop_nonce_required: false,
            default_resource: None,
            registration: RegistrationPolicy::Token,
            registration_max_per_ip: 10,
            registration_trusted_software_issuers: BTreeMap::new(),
            smtp_url: None,
            mail_from: None,
            password_reset_lifetime: 30 * 60,
            email_verification_lifetime: 24 * 3600,
            mail_max_per_address: 3,
            mail_max_per_ip: 20,
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (if given), then the `OXID_*` environment, and validates the result.
    /// Environment variables with the prefix that name no setting are ignored with a warning: platforms
    /// set some of their own (Kubernetes gives a Service named `oxid` `OXID_PORT`, `OXID_SERVICE_HOST`…).
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let known = setting_names();
        let mut explicit = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError(format!("config file {} not found", path.display())));
            }
            explicit = explicit.merge(Toml::file(path));
        }
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with(ENV_PREFIX)) {
            let key = name[ENV_PREFIX.len()..].to_ascii_lowercase();
            if !known.contains(&key) {
                let hint = closest(&key, &known).map(|k| format!(" (did you mean {ENV_PREFIX}{}?)", k.to_uppercase()));
                eprintln!("oxid: warning: ignoring {name}: not a setting{}", hint.unwrap_or_default());
            }
        }
        let env_known = known.clone();
        explicit = explicit
            .merge(Env::prefixed(ENV_PREFIX).filter(move |key| env_known.contains(&key.as_str().to_ascii_lowercase())));
        let mut config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(explicit.clone())
            .extract()
            .map_err(|e| explain(e, &known, file))?;
        if explicit.find_value("issuer").is_err() {
            config.issuer = config.default_issuer();
        }
        config.validate()?;
        if let Some(warning) = config.issuer_port_warning() {
            eprintln!("oxid: warning: {warning}");
        }
        Ok(config)
    }

    /// Without a configured issuer: this machine at the listen port, so that discovery names an address
    /// something answers on.
    fn default_issuer(&self) -> String {
        let port = self.listen.port();
        match self.listen.ip() {
            ip if ip.is_loopback() => format!("http://{}", self.listen),
            _ => {
                eprintln!(
                    "oxid: warning: issuer is not set; using http://127.0.0.1:{port}, which only this machine \
                     can reach: set OXID_ISSUER to the public https URL"
                );
                format!("http://127.0.0.1:{port}")
            }
        }
    }

    /// A loopback issuer on another port than the one served: discovery would point nowhere (unless a
    /// proxy on this machine forwards it).
    fn issuer_port_warning(&self) -> Option<String> {
        let url = url::Url::parse(&self.issuer).ok()?;
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        let port = url.port_or_known_default()?;
        (loopback && port != self.listen.port())
            .then(|| format!("issuer {} is on port {port} but the server listens on {}", self.issuer, self.listen))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let url = url::Url::parse(&self.issuer)
            .map_err(|e| ConfigError(format!("issuer {:?} is not a URL: {e}", self.issuer)))?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigError("issuer must not have a query or fragment".into()));
        }
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
            return Err(ConfigError("issuer must use https (http is allowed only for loopback hosts)".into()));
        }
        if self.issuer.ends_with('/') {
            return Err(ConfigError("issuer must not end with '/'".into()));
        }
        self.database()?;
        for (name, value) in [
            ("code_lifetime", self.code_lifetime),
            ("access_token_lifetime", self.access_token_lifetime),
            ("id_token_lifetime", self.id_token_lifetime),
            ("refresh_token_lifetime", self.refresh_token_lifetime),
            ("session_lifetime", self.session_lifetime),
            ("interaction_lifetime", self.interaction_lifetime),
            ("login_throttle_window", self.login_throttle_window),
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("audit_retention", self.audit_retention),
            ("sweep_interval", self.sweep_interval),
            ("backchannel_logout_retry_period", self.backchannel_logout_retry_period),
            ("password_reset_lifetime", self.password_reset_lifetime),
            ("email_verification_lifetime", self.email_verification_lifetime),
        ] {
            if value == 0 || value > 10 * 365 * 24 * 3600 {
                return Err(ConfigError(format!("{name} must be between 1 second and 10 years")));
            }
        }
        if self.record_cache_ttl > 300 {
            // Longer would let a deleted client or a replaced secret live on for minutes on other nodes.
            return Err(ConfigError("record_cache_ttl must be at most 300 seconds".into()));
        }
        if self.code_lifetime > 600 {
            return Err(ConfigError("code_lifetime must be at most 600 seconds (RFC 6749 4.1.2)".into()));
        }
        for (scope, claims) in &self.scope_claims {
            if crate::model::ScopeSet::parse(scope).map_or(true, |s| s.iter().count() != 1) {
                return Err(ConfigError(format!("scope_claims: {scope:?} is not a scope name")));
            }
            if ["openid", "offline_access"].contains(&scope.as_str()) {
                return Err(ConfigError(format!("scope_claims: {scope} releases no claims")));
            }
            if let Some(bad) = claims.iter().find(|c| crate::protocol::claims::is_reserved(c)) {
                return Err(ConfigError(format!("scope_claims: {bad} describes the token, not the user")));
            }
        }
        if self.password_acr.is_empty() || self.password_acr.len() > 256 {
            return Err(ConfigError("password_acr must be 1 to 256 characters".into()));
        }
        if self.mfa_acr.is_empty() || self.mfa_acr.len() > 256 || self.mfa_acr == self.password_acr {
            return Err(ConfigError("mfa_acr must be 1 to 256 characters, and not password_acr".into()));
        }
        let phishing_resistant = &self.phishing_resistant_acr;
        if phishing_resistant.is_empty()
            || phishing_resistant.len() > 256
            || [&self.password_acr, &self.mfa_acr].contains(&phishing_resistant)
        {
            return Err(ConfigError(
                "phishing_resistant_acr must be 1 to 256 characters, and not password_acr or mfa_acr".into(),
            ));
        }
        if crate::passkeys::Passkeys::from_config(self)?.is_none() && self.require_passkey {
            return Err(ConfigError(
                "require_passkey needs passkeys: an issuer on a domain name (not an IP address) or webauthn_rp_id"
                    .into(),
            ));
        }
        if !(1..=60).contains(&self.backchannel_logout_timeout) {
            return Err(ConfigError("backchannel_logout_timeout must be between 1 and 60 seconds".into()));
        }
        if self.database_pool_size == 0 {
            return Err(ConfigError("database_pool_size must be at least 1".into()));
        }
        if self.max_connections == 0 {
            return Err(ConfigError("max_connections must be at least 1".into()));
        }
        if self.default_resource.as_deref().is_some_and(|r| !crate::protocol::authorize::is_resource_indicator(r)) {
            return Err(ConfigError("default_resource must be an absolute URI without a fragment (RFC 8707)".into()));
        }
        for (issuer, jwks_uri) in &self.registration_trusted_software_issuers {
            let https = url::Url::parse(jwks_uri).is_ok_and(|u| u.scheme() == "https" || self.fetch_allow_loopback);
            if issuer.is_empty() || !https {
                return Err(ConfigError(format!(
                    "registration_trusted_software_issuers: {issuer:?} needs the https URL of its JWK Set"
                )));
            }
        }
        crate::mail::Mailer::from_config(self)?;
        if self.max_body_bytes < 1024 {
            return Err(ConfigError("max_body_bytes must be at least 1024".into()));
        }
        Ok(())
    }

    /// The `acr` a login by `method` reaches.
    pub fn acr_of(&self, method: crate::model::LoginMethod) -> &str {
        if method.is_phishing_resistant() {
            &self.phishing_resistant_acr
        } else if method.is_multi_factor() {
            &self.mfa_acr
        } else {
            &self.password_acr
        }
    }

    /// The database `database_url` names.
    pub fn database(&self) -> Result<Database, ConfigError> {
        let url = &self.database_url;
        if let Some(path) = url.strip_prefix("sqlite://").filter(|p| !p.is_empty()) {
            return Ok(Database::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(url.clone()));
        }
        Err(ConfigError("database_url must be sqlite://PATH or postgres://...".into()))
    }

    /// The client's address: the peer's, or, when the peer is a trusted proxy, the nearest address in
    /// `X-Forwarded-For` that is not itself a trusted proxy. Addresses further left were written by the
    /// client and cannot be believed.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        let hops = forwarded_for.unwrap_or_default().rsplit(',').map(|h| h.trim().parse::<IpAddr>());
        let mut client = peer;
        for hop in hops {
            match hop {
                Ok(ip) => {
                    client = ip;
                    if !self.trusted_proxies.contains(&ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }

    /// What ending a session at `now` does, as configured.
    pub fn logout(&self, now: crate::model::Timestamp) -> crate::store::Logout {
        crate::store::Logout {
            now,
            revoke_offline: self.logout_revokes_offline_access,
            give_up_at: now + self.backchannel_logout_retry_period as i64,
        }
    }

    /// True when cookies must carry `Secure` (the issuer is served over https).
    pub fn secure_cookies(&self) -> bool {
        self.issuer.starts_with("https://")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_cache_is_kept_short() {
        let with = |record_cache_ttl| Config { record_cache_ttl, ..Config::default() };
        assert!(with(0).validate().is_ok(), "0 turns the cache off");
        assert!(with(300).validate().is_ok());
        let err = with(301).validate().unwrap_err().to_string();
        assert!(err.contains("record_cache_ttl"), "{err}");
    }

    #[test]
    fn mail_and_passkey_settings_are_checked() {
        let bad_smtp = Config { smtp_url: Some("ftp://mail.example".into()), ..Config::default() };
        let err = bad_smtp.validate().unwrap_err().to_string();
        assert!(err.contains("smtp_url") && !err.contains("ftp://"), "names the setting, not its value: {err}");
        let bad_from = Config {
            smtp_url: Some("smtp://127.0.0.1:25".into()),
            mail_from: Some("no address".into()),
            ..Config::default()
        };
        assert!(bad_from.validate().unwrap_err().to_string().contains("mail_from"));
        // The default issuer is on 127.0.0.1: WebAuthn has no relying party there.
        let passkey_on_ip = Config { require_passkey: true, ..Config::default() };
        assert!(passkey_on_ip.validate().unwrap_err().to_string().contains("require_passkey"));
        let on_localhost = Config {
            require_passkey: true,
            issuer: "http://localhost:8080".into(),
            listen: "127.0.0.1:8080".parse().unwrap(),
            ..Config::default()
        };
        assert!(on_localhost.validate().is_ok());
        let same_acr = Config { phishing_resistant_acr: "urn:oxid:acr:mfa".into(), ..Config::default() };
        assert!(same_acr.validate().is_err());
    }

    #[test]
    fn scope_claims_are_checked() {
        let with = |scope: &str, claims: &[&str]| Config {
            scope_claims: BTreeMap::from([(scope.to_owned(), claims.iter().map(|c| c.to_string()).collect())]),
            ..Config::default()
        };
        assert!(with("groups", &["groups"]).validate().is_ok());
        for (scope, claims, why) in [
            ("two words", &["x"], "two words"),
            ("offline_access", &["x"], "offline_access"),
            ("groups", &["sub"], "sub"),
        ] {
            let err = with(scope, claims).validate().unwrap_err().to_string();
            assert!(err.contains("scope_claims") && err.contains(why), "{scope}: {err}");
        }
    }

    #[test]
    fn client_ip_believes_only_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let config = Config { trusted_proxies: vec![proxy], ..Config::default() };
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        // From the proxy: the nearest untrusted hop; a spoofed left-most entry is ignored.
        assert_eq!(config.client_ip(proxy, Some("198.51.100.1, 203.0.113.7")), client);
        assert_eq!(config.client_ip(proxy, Some("203.0.113.7, 10.0.0.1")), client);
        assert_eq!(config.client_ip(proxy, None), proxy);
        assert_eq!(config.client_ip(proxy, Some("garbage")), proxy);
        // From anyone else the header is not believed.
        assert_eq!(config.client_ip(client, Some("1.2.3.4")), client);
    }
}
