//! The `oxid` command line: serve, migrate, and manage users, clients and keys.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::audit;
use crate::config::Config;
use crate::crypto;
use crate::jose::keys;
use crate::key_management;
use crate::model::{
    AuditEvent, AuditKind, Client, ClientAuthMethod, ClientId, ClientOrigin, GrantType, InitialAccessToken,
    KeySuccession, ResourceServer, ResponseType, ScopeSet, SigningAlg, User, canonical_username, now,
};
use crate::password;
use crate::protocol::registration;
use crate::server;
use crate::store::{AuditedUser, SessionsToEnd, Store, StoreError};

#[derive(Parser)]
#[command(name = "oxid", version, about = "An OpenID Connect Provider")]
pub struct Cli {
    /// TOML configuration file; every setting can also come from OXID_<NAME>.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the OpenID Provider.
    Serve {
        /// Development mode: seed a demo user and client into an empty database.
        #[arg(long)]
        dev: bool,
    },
    /// Apply database migrations (also done at every start).
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage clients (relying parties).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Read the audit log (security events).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Look after the database.
    #[command(subcommand)]
    Store(StoreCommand),
    /// List and end users' sessions; see the logout notifications waiting to be delivered.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Dynamic client registration: the initial access tokens that let others register clients.
    #[command(subcommand)]
    Registration(RegistrationCommand),
    /// Resource servers: the APIs access tokens are for (RFC 8707).
    #[command(subcommand)]
    Resource(ResourceCommand),
}

#[derive(Subcommand)]
pub enum UserMfaCommand {
    /// List a user's second factors: the authenticator app, recovery codes left, passkeys.
    #[command(alias = "list")]
    Show {
        /// The user.
        username: String,
    },
    /// Remove a user's authenticator app, recovery codes and passkeys (a lost phone) and end their sessions.
    Reset {
        /// The user.
        username: String,
    },
}

#[derive(Subcommand)]
pub enum ResourceCommand {
    /// Register a resource server; prints its introspection secret when asked to make one.
    Add {
        /// Its absolute URI: what clients ask for (`resource`), and the tokens' `aud`.
        #[arg(long)]
        identifier: String,
        /// The name users see on the consent page.
        #[arg(long)]
        name: Option<String>,
        /// A scope it defines, requestable only for it (repeatable).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// `opaque` (checked by introspection) or `jwt` (RFC 9068, checked against the JWKS).
        #[arg(long, default_value = "opaque")]
        token_format: String,
        /// Seconds its access tokens live (default: access_token_lifetime).
        #[arg(long, value_name = "SECONDS")]
        access_token_lifetime: Option<u64>,
        /// How its JWT access tokens are signed.
        #[arg(long, default_value = "RS256")]
        alg: String,
        /// Give it a secret to introspect with (printed once), as a client authenticates.
        #[arg(long, conflicts_with = "jwks")]
        with_secret: bool,
        /// JWK Set file with its public keys: it introspects with signed assertions (RFC 7523).
        #[arg(long, value_name = "FILE")]
        jwks: Option<PathBuf>,
    },
    /// List resource servers.
    List,
    /// Show one resource server.
    Show {
        /// Its identifier.
        identifier: String,
    },
    /// Delete a resource server (its tokens stay valid until they expire).
    Delete {
        /// Its identifier.
        identifier: String,
    },
}

#[derive(Subcommand)]
pub enum RegistrationCommand {
    /// Initial access tokens (RFC 7591 3), needed to register with `registration = "token"`.
    #[command(subcommand)]
    Token(RegistrationTokenCommand),
}

#[derive(Subcommand)]
pub enum RegistrationTokenCommand {
    /// Make a token; prints `initial_access_token: TOKEN` (once) and its id.
    Create {
        /// Seconds until it expires (default: never).
        #[arg(long, value_name = "SECONDS")]
        expires: Option<u64>,
        /// Clients it may register (default: any number).
        #[arg(long, value_name = "N")]
        uses: Option<u32>,
    },
    /// List the tokens (never the tokens themselves).
    List,
    /// Revoke a token by its id.
    Revoke {
        /// The id `create` printed.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

#[derive(Subcommand)]
pub enum SessionCommand {
    /// List live sessions, newest first.
    List {
        /// Only the sessions of this user.
        #[arg(long, value_name = "USERNAME")]
        user: Option<String>,
        /// At most this many sessions.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// End a session (or every session of a user); the clients signed in through it are told
    /// (Back-Channel Logout), and its grants end except offline_access ones.
    End {
        /// The session's id (`sid`, as listed; it may begin with '-').
        #[arg(required_unless_present = "user", conflicts_with = "user", allow_hyphen_values = true)]
        sid: Option<String>,
        /// End every session of this user.
        #[arg(long, value_name = "USERNAME")]
        user: Option<String>,
    },
    /// Back-Channel Logout notifications not delivered yet, oldest first.
    Notifications {
        /// Only those given up as undeliverable.
        #[arg(long)]
        undeliverable: bool,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
}

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Row counts per table and the database's size.
    Stats,
    /// Delete expired rows now (servers do it every sweep_interval).
    Sweep,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// List events, oldest first.
    List {
        /// Only the events of this user.
        #[arg(long, value_name = "USERNAME")]
        user: Option<String>,
        /// Only events from this time on: RFC 3339 (2026-11-26T08:00:00Z) or seconds ago (3600).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// At most this many events.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add(UserAdd),
    /// List users.
    List,
    /// Set a new password (read from standard input); ends the user's sessions.
    Passwd {
        /// The user.
        username: String,
        /// Read the new password from standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Revoke the user's access and refresh tokens too.
        #[arg(long)]
        revoke_tokens: bool,
    },
    /// Show, set or remove a user's further claims (Core 5.1: nickname, picture, birthdate…;
    /// language-tagged forms such as name#fr; custom claims).
    Claims {
        /// The user.
        username: String,
        /// NAME=VALUE; VALUE is text, or JSON when it starts with { [ or " or is true/false.
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// A claim to remove (repeatable).
        #[arg(long = "unset", value_name = "NAME")]
        unset: Vec<String>,
    },
    /// Disable a user and end their sessions and tokens.
    Disable {
        /// The user.
        username: String,
    },
    /// A user's second factors (authenticator app, recovery codes).
    #[command(subcommand)]
    Mfa(UserMfaCommand),
    /// Delete a user and everything issued to them.
    Delete {
        /// The user.
        username: String,
    },
    /// Give a user another username (put in canonical form, RFC 8265); their `sub` stays.
    Rename {
        /// The user.
        username: String,
        /// The new username.
        new_username: String,
    },
}

#[derive(Args)]
pub struct UserAdd {
    /// The username (put in canonical form, RFC 8265: `Alice` is stored as `alice`).
    username: String,
    /// The user's email address (Core 5.1 `email`).
    #[arg(long)]
    email: Option<String>,
    /// Mark the email address as verified.
    #[arg(long)]
    email_verified: bool,
    /// Full name (Core 5.1 `name`).
    #[arg(long)]
    name: Option<String>,
    /// Given name (Core 5.1 `given_name`).
    #[arg(long)]
    given_name: Option<String>,
    /// Family name (Core 5.1 `family_name`).
    #[arg(long)]
    family_name: Option<String>,
    /// Phone number (Core 5.1 `phone_number`), E.164 recommended.
    #[arg(long)]
    phone: Option<String>,
    /// A further claim, NAME=VALUE (repeatable; see `user claims`).
    #[arg(long = "claim", value_name = "NAME=VALUE")]
    claims: Vec<String>,
    /// Read the password from standard input (required: passwords never go on the command line).
    #[arg(long, required = true)]
    password_stdin: bool,
}

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its id and, for confidential clients, its secret (once).
    Add(Box<ClientAdd>),
    /// List clients.
    List,
    /// Show one client.
    Show {
        /// The client_id (generated ones may begin with '-').
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Delete a client and every token issued to it.
    Delete {
        /// The client_id (generated ones may begin with '-').
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Replace a client's secret; prints the new one (once).
    RotateSecret {
        /// The client_id (generated ones may begin with '-').
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

#[derive(Args)]
pub struct ClientAdd {
    /// The name shown to users on the consent page.
    #[arg(long)]
    name: String,
    /// A redirect URI, compared exactly (repeatable; needed for the authorization_code grant).
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// A public client (no secret; PKCE required).
    #[arg(long)]
    public: bool,
    /// The client id to use instead of a generated one.
    #[arg(long)]
    id: Option<String>,
    /// Read the secret from standard input instead of generating one (at least 32 characters).
    #[arg(long)]
    secret_stdin: bool,
    /// A grant type the client may use (repeatable; default: authorization_code and refresh_token).
    #[arg(long = "grant-type", value_name = "GRANT")]
    grant_types: Vec<String>,
    /// How the client authenticates at the token endpoint (default: client_secret_basic, or none
    /// with --public).
    #[arg(long, value_name = "METHOD")]
    auth_method: Option<String>,
    /// Trusted first-party client: no consent page.
    #[arg(long)]
    skip_consent: bool,
    /// JWK Set file with the client's public keys (for private_key_jwt).
    #[arg(long, value_name = "FILE")]
    jwks: Option<PathBuf>,
    /// ID Token signing algorithm for this client.
    #[arg(long, default_value = "RS256")]
    id_token_alg: String,
    /// A scope the client may obtain for itself with client_credentials (repeatable; RFC 7591 `scope`).
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// A response type the client may use, e.g. "code id_token" (repeatable; default: code).
    #[arg(long = "response-type", value_name = "TYPE")]
    response_types: Vec<String>,
    /// Seconds after which a sign-in needs a fresh login, for requests without max_age.
    #[arg(long, value_name = "SECONDS")]
    default_max_age: Option<u32>,
    /// `public` (default) or `pairwise` subject identifiers (Core 8).
    #[arg(long, default_value = "public")]
    subject_type: String,
    /// For pairwise subjects: a URL whose JSON array lists every redirect URI (Core 8.1).
    #[arg(long, value_name = "URL")]
    sector_identifier_uri: Option<String>,
    /// Where the client publishes its public keys (instead of --jwks).
    #[arg(long, value_name = "URL")]
    jwks_uri: Option<String>,
    /// The algorithm request objects must be signed with, or `none` to accept unsigned ones (Core 6.1).
    #[arg(long, value_name = "ALG")]
    request_object_alg: Option<String>,
    /// A request_uri the client may use (repeatable; Core 6.2).
    #[arg(long = "request-uri", value_name = "URL")]
    request_uris: Vec<String>,
    /// Encrypt ID Tokens to the client's key with this JWE alg (RSA-OAEP, RSA-OAEP-256, ECDH-ES…).
    #[arg(long, value_name = "ALG")]
    id_token_encrypted_alg: Option<String>,
    /// The JWE enc for ID Tokens (default A128CBC-HS256).
    #[arg(long, value_name = "ENC", default_value = "A128CBC-HS256")]
    id_token_encrypted_enc: String,
    /// Return UserInfo as a JWT signed with this algorithm.
    #[arg(long, value_name = "ALG")]
    userinfo_signed_alg: Option<String>,
    /// Encrypt UserInfo to the client's key with this JWE alg.
    #[arg(long, value_name = "ALG")]
    userinfo_encrypted_alg: Option<String>,
    /// The JWE enc for UserInfo (default A128CBC-HS256).
    #[arg(long, value_name = "ENC", default_value = "A128CBC-HS256")]
    userinfo_encrypted_enc: String,
    /// Where a third party (such as the OP's /initiate-login/ID) starts a login at this client (Core 4).
    #[arg(long, value_name = "URL")]
    initiate_login_uri: Option<String>,
    /// Where a logout may send the browser back to, compared exactly (repeatable; RP-Initiated Logout).
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    post_logout_redirect_uris: Vec<String>,
    /// A page of the client that logs it out when the OP's signed-out page loads it in an iframe
    /// (Front-Channel Logout).
    #[arg(long, value_name = "URI")]
    frontchannel_logout_uri: Option<String>,
    /// Add iss and sid to the front-channel logout URI.
    #[arg(long, requires = "frontchannel_logout_uri")]
    frontchannel_logout_session_required: bool,
    /// Where the OP POSTs a Logout Token when a session the client signed in through ends
    /// (Back-Channel Logout).
    #[arg(long, value_name = "URI")]
    backchannel_logout_uri: Option<String>,
    /// The client needs the sid claim in Logout Tokens (oxid always sends it).
    #[arg(long, requires = "backchannel_logout_uri")]
    backchannel_logout_session_required: bool,
    /// Its authorization requests must be pushed first (RFC 9126).
    #[arg(long)]
    require_par: bool,
    /// Its access tokens must be bound to a key with DPoP (RFC 9449).
    #[arg(long)]
    require_dpop: bool,
    /// The `acr` every sign-in to it must reach (`mfa_acr`: a second factor, set up at sign-in if missing).
    #[arg(long, value_name = "ACR")]
    require_acr: Option<String>,
    /// CIBA token delivery (with --grant-type urn:openid:params:grant-type:ciba): poll or ping.
    #[arg(long, value_name = "MODE")]
    ciba_mode: Option<String>,
    /// CIBA ping mode: where the client is told that the user decided.
    #[arg(long, value_name = "URL")]
    ciba_notification_endpoint: Option<String>,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// List signing keys.
    List,
    /// Generate a new current key for an algorithm; the old one stays published until its tokens expire.
    Rotate {
        /// The algorithm whose key is replaced.
        #[arg(long, default_value = "RS256")]
        alg: String,
        /// Seconds before the new key starts signing (published at once); default:
        /// signing_key_publish_ahead.
        #[arg(long, value_name = "SECONDS")]
        activate_after: Option<u64>,
        /// Rotate the request-object encryption keys instead (the previous ones keep decrypting).
        #[arg(long, conflicts_with_all = ["alg", "activate_after"])]
        encryption: bool,
    },
}

async fn audit_command(cmd: AuditCommand, store: &dyn Store) -> anyhow::Result<()> {
    let AuditCommand::List { user, since, limit } = cmd;
    let since = match since.as_deref() {
        None => 0,
        Some(text) => match text.parse::<i64>() {
            Ok(ago) => now() - ago,
            Err(_) => time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map_err(|e| usage(anyhow::anyhow!("--since: {text:?} is neither RFC 3339 nor seconds: {e}")))?
                .unix_timestamp(),
        },
    };
    let user = match user {
        Some(name) => {
            let name = account(store, &name).await?;
            let id = store.user_by_username(&name).await?.map(|u| u.id);
            Some((name, id))
        }
        None => None,
    };
    let user = user.as_ref().map(|(name, id)| AuditedUser { username: name, user_id: id.as_deref() });
    let rows = store.audit_events(user, since, limit).await?.into_iter().map(|e| {
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        vec![date(e.at), e.kind.as_str().into(), or_dash(e.username), or_dash(e.client_id), or_dash(e.ip), e.detail]
    });
    print_table(&["TIME", "EVENT", "USER", "CLIENT", "IP", "DETAIL"], rows);
    Ok(())
}

/// Records an operator's change to the user `username` (made with this command line).
async fn audit_user(store: &dyn Store, username: &str, what: &str) {
    let id = store.user_by_username(username).await.ok().flatten().map(|u| u.id);
    let event = AuditEvent::new(now(), AuditKind::UserChanged, format!("{what} (command line)"));
    audit::record(store, event.user(id.as_deref(), Some(username))).await;
}

/// Records an operator's change to the client `client_id`.
async fn audit_client(store: &dyn Store, client_id: &str, what: &str) {
    let event = AuditEvent::new(now(), AuditKind::ClientChanged, format!("{what} (command line)"));
    audit::record(store, event.client(client_id)).await;
}

/// A Unix time as RFC 3339 (UTC).
fn date(t: crate::model::Timestamp) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

/// Prints `rows` under `headers`, each column as wide as its widest value.
fn print_table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([headers[i].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// A command given values it cannot use (exit code 2, like a configuration error), as opposed to one that
/// failed while running (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct UsageError(anyhow::Error);

fn usage(error: anyhow::Error) -> anyhow::Error {
    UsageError(error).into()
}

fn read_stdin_line(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).with_context(|| format!("reading the {what} from stdin"))?;
    let value = line.trim_end_matches(['\n', '\r']).to_owned();
    if value.is_empty() {
        bail!("no {what} on standard input");
    }
    Ok(value)
}

/// Runs a command. Configuration errors are reported by the caller (exit code 2).
pub async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve { dev } => serve(config, dev).await,
        Command::Migrate => {
            let store = server::open_store(&config).await?;
            report_usernames(store.as_ref()).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::User(cmd) => user(cmd, &config, server::open_existing_store(&config).await?.as_ref()).await,
        Command::Session(cmd) => session(cmd, &config, server::open_existing_store(&config).await?.as_ref()).await,
        Command::Client(cmd) => client(cmd, &config, server::open_existing_store(&config).await?.as_ref()).await,
        Command::Keys(cmd) => keys_command(cmd, &config, server::open_existing_store(&config).await?.as_ref()).await,
        Command::Resource(cmd) => resource(cmd, server::open_existing_store(&config).await?.as_ref()).await,
        Command::Registration(RegistrationCommand::Token(cmd)) => {
            registration_token(cmd, server::open_existing_store(&config).await?.as_ref()).await
        }
        Command::Audit(cmd) => audit_command(cmd, server::open_existing_store(&config).await?.as_ref()).await,
        Command::Store(cmd) => {
            let store = server::open_existing_store(&config).await?;
            match cmd {
                StoreCommand::Stats => {
                    let (counts, size) = store.stats().await?;
                    let rows = counts.into_iter().map(|(table, n)| vec![table.to_owned(), n.to_string()]);
                    print_table(&["TABLE", "ROWS"], rows);
                    println!("database size: {:.1} MiB", size as f64 / (1024.0 * 1024.0));
                }
                StoreCommand::Sweep => {
                    let swept = server::sweep(store.as_ref(), &config, now(), None).await?;
                    println!("deleted {swept} expired rows");
                }
            }
            Ok(())
        }
    }
}

/// Canonicalizes stored usernames, and says which ones need the operator (they cannot sign in as they are).
async fn report_usernames(store: &dyn Store) -> anyhow::Result<()> {
    for problem in server::canonicalize_usernames(store).await? {
        eprintln!("oxid: warning: {problem}; `oxid user rename` or `oxid user delete` it");
    }
    Ok(())
}

async fn serve(config: Config, dev: bool) -> anyhow::Result<()> {
    let store = server::open_store(&config).await?;
    report_usernames(store.as_ref()).await?;
    if dev {
        seed_demo(store.as_ref(), &config).await?;
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(issuer = %config.issuer, listen = %config.listen, "oxid is serving");
    let state = server::prepare(config, store, crate::model::Clock::system()).await?;
    server::serve(state, listener, server::shutdown_signal()).await?;
    Ok(())
}

/// `serve --dev`: a demo user and client, only into an empty database, credentials printed once.
async fn seed_demo(store: &dyn Store, config: &Config) -> anyhow::Result<()> {
    if !store.users().await?.is_empty() || !store.clients().await?.is_empty() {
        // The credentials were printed once, at the first start.
        eprintln!(
            "oxid: --dev: the database already has users or clients, so nothing was seeded. The demo \
             password was printed at the first start; to set a new one:\n  \
             printf '%s\\n' 'a new password' | oxid user passwd demo --password-stdin"
        );
        return Ok(());
    }
    let password = crypto::random_token()[..16].to_owned();
    let now = now();
    let user = User {
        id: User::new_id(),
        username: "demo".into(),
        password_hash: password::hash(password.clone()).await?,
        email: Some("demo@example.com".into()),
        email_verified: true,
        name: Some("Demo User".into()),
        given_name: Some("Demo".into()),
        family_name: Some("User".into()),
        created_at: now,
        updated_at: now,
        ..User::default()
    };
    store.insert_user(&user).await?;
    let secret = crypto::random_client_secret();
    let client = Client {
        id: "demo-client".parse()?,
        name: "Demo Client".into(),
        secret_hash: Some(crypto::token_hash(&secret)),
        secret_for_jwt: None,
        redirect_uris: vec!["http://127.0.0.1:8000/callback".parse()?, "http://localhost:8000/callback".parse()?],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        auth_method: ClientAuthMethod::ClientSecretBasic,
        id_token_signed_response_alg: SigningAlg::RS256,
        jwks: None,
        skip_consent: false,
        created_at: now,
        metadata: Default::default(),
    };
    store.insert_client(&client).await?;
    println!("--dev: seeded a demo user and client (shown once):");
    println!("  user:          demo / {password}");
    println!("  client_id:     demo-client");
    println!("  client_secret: {secret}");
    println!("  redirect_uri:  http://127.0.0.1:8000/callback");
    println!("  discovery:     {}/.well-known/openid-configuration", config.issuer);
    Ok(())
}

/// The account a USERNAME argument names: a stored username exactly as written (one that could not
/// be put in canonical form yet), else its canonical form (RFC 8265).
async fn account(store: &dyn Store, username: &str) -> anyhow::Result<String> {
    if store.user_by_username(username).await?.is_some() {
        return Ok(username.to_owned());
    }
    canonical_username(username).map_err(|e| anyhow::anyhow!("no user {username}: {e}"))
}

async fn resource(cmd: ResourceCommand, store: &dyn Store) -> anyhow::Result<()> {
    match cmd {
        ResourceCommand::Add {
            identifier,
            name,
            scopes,
            token_format,
            access_token_lifetime,
            alg,
            with_secret,
            jwks,
        } => {
            if !crate::protocol::authorize::is_resource_indicator(&identifier) {
                return Err(usage(anyhow::anyhow!(
                    "--identifier must be an absolute URI without a fragment (RFC 8707)"
                )));
            }
            let mut scope = ScopeSet::default();
            for s in &scopes {
                scope = scope.union(&ScopeSet::parse(s).map_err(|e| usage(anyhow::anyhow!("--scope: {e}")))?);
            }
            let secret = with_secret.then(crypto::random_client_secret);
            let jwks = match &jwks {
                Some(path) => {
                    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                    josekit::jwk::JwkSet::from_bytes(&text)
                        .map_err(|e| usage(anyhow::anyhow!("--jwks: not a JWK Set: {e}")))?;
                    Some(text)
                }
                None => None,
            };
            let resource = ResourceServer {
                name: name.unwrap_or_else(|| identifier.clone()),
                identifier,
                scopes: scope,
                token_format: token_format.parse().map_err(|e| usage(anyhow::anyhow!("--token-format: {e}")))?,
                signing_alg: alg.parse().map_err(|e| usage(anyhow::anyhow!("--alg: {e}")))?,
                access_token_lifetime,
                secret_hash: secret.as_deref().map(crypto::token_hash),
                jwks,
                created_at: now(),
            };
            match store.insert_resource(&resource).await {
                Err(StoreError::Conflict) => bail!("resource server {} already exists", resource.identifier),
                other => other?,
            }
            println!("resource: {}", resource.identifier);
            if let Some(secret) = secret {
                println!("introspection_secret: {secret}");
            }
        }
        ResourceCommand::List => {
            let rows = store
                .resources()
                .await?
                .into_iter()
                .map(|r| vec![r.identifier, r.token_format.as_str().to_owned(), r.scopes.to_string(), r.name]);
            print_table(&["IDENTIFIER", "FORMAT", "SCOPES", "NAME"], rows);
        }
        ResourceCommand::Show { identifier } => {
            let Some(r) = store.resource(&identifier).await? else { bail!("no resource server {identifier}") };
            println!("identifier: {}", r.identifier);
            println!("name: {}", r.name);
            println!("scopes: {}", r.scopes);
            println!("token_format: {}", r.token_format.as_str());
            println!("alg: {}", r.signing_alg);
            if let Some(lifetime) = r.access_token_lifetime {
                println!("access_token_lifetime: {lifetime}");
            }
            let introspects = match (&r.secret_hash, &r.jwks) {
                (Some(_), _) => "with a secret",
                (None, Some(_)) => "with signed assertions",
                (None, None) => "no",
            };
            println!("introspects: {introspects}");
        }
        ResourceCommand::Delete { identifier } => {
            if !store.delete_resource(&identifier).await? {
                bail!("no resource server {identifier}");
            }
            println!("deleted resource server {identifier}");
        }
    }
    Ok(())
}

async fn registration_token(cmd: RegistrationTokenCommand, store: &dyn Store) -> anyhow::Result<()> {
    match cmd {
        RegistrationTokenCommand::Create { expires, uses } => {
            if expires == Some(0) || uses == Some(0) {
                return Err(usage(anyhow::anyhow!("--expires and --uses must be at least 1")));
            }
            let token = crypto::random_token();
            let now = now();
            let created = InitialAccessToken {
                id: crypto::random_token()[..8].to_owned(),
                token_hash: crypto::token_hash(&token),
                created_at: now,
                expires_at: expires.map(|secs| now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX))),
                uses_left: uses,
            };
            store.insert_initial_access_token(&created).await?;
            println!("initial_access_token: {token}");
            println!("id: {}", created.id);
            let event =
                AuditEvent::new(now, AuditKind::ClientChanged, format!("initial access token {} created", created.id));
            audit::record(store, event).await;
        }
        RegistrationTokenCommand::List => {
            let now = now();
            let rows = store.initial_access_tokens().await?.into_iter().map(|t| {
                let expires = match t.expires_at {
                    Some(at) if at <= now => format!("expired {}", date(at)),
                    Some(at) => date(at),
                    None => "never".to_owned(),
                };
                let uses = t.uses_left.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
                vec![t.id, date(t.created_at), expires, uses]
            });
            print_table(&["ID", "CREATED", "EXPIRES", "USES_LEFT"], rows);
        }
        RegistrationTokenCommand::Revoke { id } => {
            if !store.revoke_initial_access_token(&id).await? {
                bail!("no initial access token {id}");
            }
            println!("revoked initial access token {id}");
            let event = AuditEvent::new(now(), AuditKind::ClientChanged, format!("initial access token {id} revoked"));
            audit::record(store, event).await;
        }
    }
    Ok(())
}

async fn session(cmd: SessionCommand, config: &Config, store: &dyn Store) -> anyhow::Result<()> {
    match cmd {
        SessionCommand::List { user, limit } => {
            let user_id = match user {
                Some(name) => {
                    let name = account(store, &name).await?;
                    let Some(user) = store.user_by_username(&name).await? else { bail!("no user {name}") };
                    Some(user.id)
                }
                None => None,
            };
            let usernames: std::collections::HashMap<String, String> =
                store.users().await?.into_iter().map(|u| (u.id, u.username)).collect();
            let mut rows = Vec::new();
            for s in store.sessions(user_id.as_deref(), now(), limit).await? {
                let username = usernames.get(&s.user_id).cloned().unwrap_or_else(|| s.user_id.clone());
                let clients: Vec<String> =
                    store.session_clients(&s.sid).await?.into_iter().map(|c| c.to_string()).collect();
                let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
                let clients = if clients.is_empty() { "-".to_owned() } else { clients.join(",") };
                rows.push(vec![s.sid, username, date(s.auth_time), date(s.expires_at), or_dash(s.device.ip), clients]);
            }
            print_table(&["SID", "USER", "SIGNED_IN", "EXPIRES", "IP", "CLIENTS"], rows.into_iter());
        }
        SessionCommand::End { sid, user } => {
            let logout = config.logout(now());
            let ended = match (sid, user) {
                (Some(sid), _) => store.end_sessions(SessionsToEnd::Sid(&sid), logout).await?,
                (None, Some(name)) => {
                    let name = account(store, &name).await?;
                    if store.user_by_username(&name).await?.is_none() {
                        bail!("no user {name}");
                    }
                    store.end_sessions(SessionsToEnd::Username(&name), logout).await?
                }
                (None, None) => unreachable!("clap requires one"),
            };
            if ended.is_empty() {
                bail!("no such session");
            }
            for e in &ended {
                let notified = e.clients.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ");
                println!("ended session {} (clients: {})", e.sid, if notified.is_empty() { "none" } else { &notified });
                let event = AuditEvent::new(now(), AuditKind::SessionEnded, format!("sid {} (command line)", e.sid));
                audit::record(store, event.user(Some(&e.user_id), None)).await;
            }
        }
        SessionCommand::Notifications { undeliverable, limit } => {
            let rows = store.logout_notifications(undeliverable, limit).await?.into_iter().map(|n| {
                let status = match n.failed_at {
                    Some(at) => format!("undeliverable since {}", date(at)),
                    None => format!("retrying until {}", date(n.give_up_at)),
                };
                vec![
                    n.id.to_string(),
                    n.client_id.to_string(),
                    n.sid,
                    date(n.created_at),
                    n.attempts.to_string(),
                    status,
                    n.last_error.unwrap_or_else(|| "-".into()),
                ]
            });
            print_table(&["ID", "CLIENT", "SID", "QUEUED", "ATTEMPTS", "STATUS", "LAST_ERROR"], rows);
        }
    }
    Ok(())
}

async fn user(cmd: UserCommand, config: &Config, store: &dyn Store) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add(a) => {
            let username = canonical_username(&a.username).map_err(|e| usage(e.into()))?;
            let mut claims = serde_json::Map::new();
            set_claims(&mut claims, &a.claims).map_err(usage)?;
            let password = read_stdin_line("password").map_err(usage)?;
            let now = now();
            let user = User {
                id: User::new_id(),
                username: username.clone(),
                password_hash: password::hash(password).await.map_err(|e| usage(e.into()))?,
                email: a.email,
                email_verified: a.email_verified,
                name: a.name,
                given_name: a.given_name,
                family_name: a.family_name,
                phone_number: a.phone,
                claims,
                created_at: now,
                updated_at: now,
                ..User::default()
            };
            match store.insert_user(&user).await {
                Err(StoreError::Conflict) => bail!("user {username} already exists"),
                other => other?,
            }
            println!("added user {} (sub {})", user.username, user.id);
            audit_user(store, &username, "added").await;
        }
        UserCommand::List => {
            let rows = store.users().await?.into_iter().map(|u| {
                let status = if u.disabled { "disabled" } else { "active" };
                let email = u.email.unwrap_or_else(|| "-".into());
                vec![u.username, u.id, email, date(u.created_at), status.into()]
            });
            print_table(&["USERNAME", "SUB", "EMAIL", "CREATED", "STATUS"], rows);
        }
        UserCommand::Passwd { username, revoke_tokens, .. } => {
            let username = account(store, &username).await?;
            let password = read_stdin_line("password").map_err(usage)?;
            let hash = password::hash(password).await.map_err(|e| usage(e.into()))?;
            if !store.set_password_hash(&username, &hash, revoke_tokens, config.logout(now())).await? {
                bail!("no user {username}");
            }
            let ended = if revoke_tokens { "their sessions and tokens are revoked" } else { "their sessions ended" };
            println!("password changed for {username}; {ended}");
            audit_user(store, &username, &format!("password changed; {ended}")).await;
        }
        UserCommand::Claims { username, set, unset } => {
            let username = account(store, &username).await?;
            let Some(user) = store.user_by_username(&username).await? else {
                bail!("no user {username}");
            };
            let mut claims = user.claims;
            if !set.is_empty() || !unset.is_empty() {
                set_claims(&mut claims, &set).map_err(usage)?;
                for name in &unset {
                    claims.remove(name);
                }
                store.set_user_claims(&username, &claims).await?;
                audit_user(store, &username, "claims changed").await;
            }
            for (name, value) in &claims {
                println!("{name}: {value}");
            }
        }
        UserCommand::Mfa(cmd) => {
            let (UserMfaCommand::Show { username } | UserMfaCommand::Reset { username }) = &cmd;
            let username = account(store, username).await?;
            let Some(user) = store.user_by_username(&username).await? else { bail!("no user {username}") };
            match cmd {
                UserMfaCommand::Show { .. } => {
                    let totp = store.totp(&user.id).await?.is_some_and(|t| t.confirmed);
                    println!("authenticator_app: {}", if totp { "on" } else { "off" });
                    println!("recovery_codes_left: {}", store.recovery_codes_left(&user.id).await?);
                    for passkey in store.passkeys(&user.id).await? {
                        println!("passkey: {} ({})", passkey.name, passkey.credential_id);
                    }
                }
                UserMfaCommand::Reset { .. } => {
                    store.remove_second_factors(&user.id, crate::store::FactorsToRemove::All).await?;
                    let ended = store.end_sessions(SessionsToEnd::User(&user.id), config.logout(now())).await?;
                    println!("reset {username}'s second factors; {} session(s) ended", ended.len());
                    audit_user(store, &username, "second factors reset").await;
                }
            }
        }
        UserCommand::Disable { username } => {
            let username = account(store, &username).await?;
            if !store.disable_user(&username, config.logout(now())).await? {
                bail!("no user {username}");
            }
            println!("disabled {username}; their sessions and tokens are revoked");
            audit_user(store, &username, "disabled").await;
        }
        UserCommand::Rename { username, new_username } => {
            let old = account(store, &username).await?;
            let Some(user) = store.user_by_username(&old).await? else { bail!("no user {username}") };
            let new = canonical_username(&new_username).map_err(|e| usage(e.into()))?;
            match store.rename_user(&user.id, &new).await {
                Ok(()) => {
                    println!("renamed {old} to {new} (sub {})", user.id);
                    audit_user(store, &new, &format!("renamed from {old}")).await;
                }
                Err(StoreError::Conflict) => bail!("user {new} already exists"),
                Err(e) => return Err(e.into()),
            }
        }
        UserCommand::Delete { username } => {
            let username = account(store, &username).await?;
            if !store.delete_user(&username, config.logout(now())).await? {
                bail!("no user {username}");
            }
            println!("deleted {username}");
            let event = AuditEvent::new(now(), AuditKind::UserChanged, "deleted").user(None, Some(&username));
            audit::record(store, event).await;
        }
    }
    Ok(())
}

/// The validated registration a `client add` describes: its flags as a metadata document (Registration
/// 2), checked by the same rules as the registration endpoint's.
fn build_client(a: &ClientAdd) -> anyhow::Result<Client> {
    let auth_method = match (&a.auth_method, a.public) {
        (Some(m), _) => m.as_str(),
        (None, true) => "none",
        (None, false) => "client_secret_basic",
    };
    if a.public && auth_method != "none" {
        bail!("a --public client authenticates with 'none'");
    }
    let named_grants: Vec<&str> = a.grant_types.iter().map(String::as_str).collect();
    let mut grant_types =
        if named_grants.is_empty() { vec!["authorization_code", "refresh_token"] } else { named_grants.clone() };
    let response_types: Vec<&str> = match a.response_types.iter().map(String::as_str).collect::<Vec<_>>() {
        // The default `code` makes no sense for a client without the grant (a service account).
        none if none.is_empty() && !grant_types.contains(&"authorization_code") => none,
        none if none.is_empty() => vec!["code"],
        named => named,
    };
    // Response types that return tokens from the authorization endpoint imply the implicit grant.
    let tokens_in_front =
        response_types.iter().any(|r| r.parse::<ResponseType>().is_ok_and(|r| r.is_front_channel_token()));
    if tokens_in_front && !grant_types.contains(&"implicit") {
        grant_types.push("implicit");
    }
    let mut doc = serde_json::json!({
        "client_name": a.name,
        "redirect_uris": a.redirect_uris,
        "grant_types": grant_types,
        "response_types": response_types,
        "token_endpoint_auth_method": auth_method,
        "id_token_signed_response_alg": a.id_token_alg,
        "subject_type": a.subject_type,
        "request_uris": a.request_uris,
        "post_logout_redirect_uris": a.post_logout_redirect_uris,
        "frontchannel_logout_session_required": a.frontchannel_logout_session_required,
        "backchannel_logout_session_required": a.backchannel_logout_session_required,
        "require_pushed_authorization_requests": a.require_par,
        "dpop_bound_access_tokens": a.require_dpop,
    });
    let optional = [
        ("default_max_age", a.default_max_age.map(serde_json::Value::from)),
        ("sector_identifier_uri", a.sector_identifier_uri.clone().map(Into::into)),
        ("jwks_uri", a.jwks_uri.clone().map(Into::into)),
        ("request_object_signing_alg", a.request_object_alg.clone().map(Into::into)),
        ("id_token_encrypted_response_alg", a.id_token_encrypted_alg.clone().map(Into::into)),
        ("userinfo_signed_response_alg", a.userinfo_signed_alg.clone().map(Into::into)),
        ("userinfo_encrypted_response_alg", a.userinfo_encrypted_alg.clone().map(Into::into)),
        ("initiate_login_uri", a.initiate_login_uri.clone().map(Into::into)),
        ("frontchannel_logout_uri", a.frontchannel_logout_uri.clone().map(Into::into)),
        ("backchannel_logout_uri", a.backchannel_logout_uri.clone().map(Into::into)),
        ("scope", (!a.scopes.is_empty()).then(|| a.scopes.join(" ").into())),
        ("backchannel_token_delivery_mode", a.ciba_mode.clone().map(Into::into)),
        ("backchannel_client_notification_endpoint", a.ciba_notification_endpoint.clone().map(Into::into)),
    ];
    for (name, value) in optional.into_iter().filter_map(|(n, v)| v.map(|v| (n, v))) {
        doc[name] = value;
    }
    if a.id_token_encrypted_alg.is_some() {
        doc["id_token_encrypted_response_enc"] = a.id_token_encrypted_enc.clone().into();
    }
    if a.userinfo_encrypted_alg.is_some() {
        doc["userinfo_encrypted_response_enc"] = a.userinfo_encrypted_enc.clone().into();
    }
    if let Some(path) = &a.jwks {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        josekit::jwk::JwkSet::from_bytes(&text).map_err(|e| anyhow::anyhow!("--jwks: not a JWK Set: {e}"))?;
        doc["jwks"] = serde_json::from_str(&text).context("--jwks")?;
    }
    let id: ClientId = match &a.id {
        Some(id) => id.parse().map_err(|e| anyhow::anyhow!("--id: {e}"))?,
        None => crypto::random_token()[..22].parse()?,
    };
    let serde_json::Value::Object(doc) = doc else { unreachable!("built as an object") };
    let mut client = registration::client_from_metadata(&doc, id, now()).map_err(|e| anyhow::anyhow!(e.description))?;
    client.skip_consent = a.skip_consent;
    client.metadata.required_acr = a.require_acr.clone();
    Ok(client)
}

/// Applies `NAME=VALUE` assignments to a user's further claims, each checked against Core 5.1.
fn set_claims(claims: &mut serde_json::Map<String, serde_json::Value>, assignments: &[String]) -> anyhow::Result<()> {
    for assignment in assignments {
        let Some((name, raw)) = assignment.split_once('=') else {
            bail!("--claim/--set takes NAME=VALUE, got {assignment:?}");
        };
        let json_like = raw.starts_with(['{', '[', '"']) || raw == "true" || raw == "false";
        let value = if json_like {
            serde_json::from_str(raw).with_context(|| format!("{name}: the value is not valid JSON"))?
        } else {
            serde_json::Value::String(raw.to_owned())
        };
        crate::protocol::claims::validate_user_claim(name, &value).map_err(|e| anyhow::anyhow!(e))?;
        claims.insert(name.to_owned(), value);
    }
    Ok(())
}

fn made_by(c: &Client) -> &'static str {
    match c.metadata.origin {
        ClientOrigin::Operator => "operator",
        ClientOrigin::Registration { .. } => "registration",
    }
}

/// Every registered field, as the registration endpoint would answer it (Registration 3.2), plus what
/// only the operator sets.
fn print_client(c: &Client) {
    println!("made_by: {}", made_by(c));
    println!("skip_consent: {}", c.skip_consent);
    if let Some(sector) = &c.metadata.sector_identifier {
        println!("sector: {sector}");
    }
    for (name, value) in registration::metadata_document(c) {
        let values = match value {
            serde_json::Value::Array(values) => values,
            other => vec![other],
        };
        for value in values {
            match value {
                serde_json::Value::String(s) => println!("{name}: {s}"),
                other => println!("{name}: {other}"),
            }
        }
    }
}

async fn client(cmd: ClientCommand, config: &Config, store: &dyn Store) -> anyhow::Result<()> {
    let parse_id = |id: &str| -> anyhow::Result<ClientId> { id.parse().map_err(|e| anyhow::anyhow!("{e}")) };
    match cmd {
        ClientCommand::Add(a) => {
            let mut client = build_client(&a).map_err(usage)?;
            crate::registration::settle_sector_identifier(
                &mut client,
                &crate::fetch::Fetcher::new(config.fetch_allow_loopback),
            )
            .await
            .map_err(|e| usage(anyhow::anyhow!(e)))?;
            let given = if a.secret_stdin { Some(read_stdin_line("client secret").map_err(usage)?) } else { None };
            let secret =
                crate::registration::attach_secret(&mut client, given).map_err(|e| usage(anyhow::anyhow!(e)))?;
            match store.insert_client(&client).await {
                Err(StoreError::Conflict) => bail!("client {} already exists", client.id),
                other => other?,
            }
            println!("client_id: {}", client.id);
            audit_client(store, client.id.as_str(), "added").await;
            if let Some(secret) = secret {
                println!("client_secret: {secret}");
            }
        }
        ClientCommand::List => {
            let rows = store.clients().await?.into_iter().map(|c| {
                vec![c.id.to_string(), c.auth_method.to_string(), made_by(&c).to_owned(), date(c.created_at), c.name]
            });
            print_table(&["CLIENT_ID", "AUTH_METHOD", "MADE_BY", "CREATED", "NAME"], rows);
        }
        ClientCommand::Show { id } => match store.client(&parse_id(&id)?).await? {
            Some(c) => print_client(&c),
            None => bail!("no client {id}"),
        },
        ClientCommand::Delete { id } => {
            if !store.delete_client(&parse_id(&id)?).await? {
                bail!("no client {id}");
            }
            println!("deleted client {id}");
            audit_client(store, &id, "deleted").await;
        }
        ClientCommand::RotateSecret { id } => {
            let Some(mut c) = store.client(&parse_id(&id)?).await? else {
                bail!("no client {id}");
            };
            let Some(secret) = crate::registration::attach_secret(&mut c, None).map_err(|e| anyhow::anyhow!(e))? else {
                bail!("client {id} has no secret ({})", c.auth_method);
            };
            let hash = c.secret_hash.as_deref().expect("attach_secret set it");
            store.set_client_secret(&c.id, hash, c.secret_for_jwt.as_deref()).await?;
            println!("client_secret: {secret}");
            audit_client(store, &id, "secret rotated").await;
        }
    }
    Ok(())
}

async fn keys_command(cmd: KeysCommand, config: &Config, store: &dyn Store) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::List => {
            key_management::ensure_current_keys(store, now()).await?;
            let now = now();
            let rows = store.signing_keys().await?.into_iter().map(|k| {
                let status = match k.retired_at {
                    _ if k.activates_at > now => format!("next, signs from {}", date(k.activates_at)),
                    None => "current".to_owned(),
                    Some(t) if t > now => format!("current, retires {}", date(t)),
                    Some(t) => format!("retired {}", date(t)),
                };
                vec![k.kid, k.alg.to_string(), date(k.created_at), status]
            });
            print_table(&["KID", "ALG", "CREATED", "STATUS"], rows);
        }
        KeysCommand::Rotate { encryption: true, .. } => {
            key_management::rotate_decryption_keys(store).await?;
            println!("new request-object encryption keys published; the previous ones keep decrypting");
            let event = AuditEvent::new(now(), AuditKind::KeyRotated, "request-object encryption keys");
            audit::record(store, event).await;
        }
        KeysCommand::Rotate { alg, activate_after, .. } => {
            let alg: SigningAlg = alg.parse().map_err(|e| usage(anyhow::anyhow!("--alg: {e}")))?;
            let mut key = keys::generate(alg, now())?;
            key.activates_at = key.created_at + activate_after.unwrap_or(config.signing_key_publish_ahead) as i64;
            store.install_signing_key(&key, KeySuccession::Current).await?;
            println!(
                "new {alg} key {}: published now, signing from {} (running servers pick it up within a minute)",
                key.kid,
                date(key.activates_at)
            );
            let detail = format!("{alg} key {} signs from {}", key.kid, date(key.activates_at));
            audit::record(store, AuditEvent::new(now(), AuditKind::KeyRotated, detail)).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every command, flag and argument explains itself in `--help`.
    #[test]
    fn every_argument_has_help() {
        fn check(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments().filter(|a| !matches!(a.get_id().as_str(), "help" | "version")) {
                if arg.get_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (the command)", sub.get_name()));
                }
                check(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        check(&Cli::command(), "oxid", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:?}");
    }
}
