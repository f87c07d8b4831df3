//! What a user grants a client, and what is issued from it: consent, codes, access and refresh tokens.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Authentication, ClaimsRequest, ClientId, RedirectUri, ScopeSet, SigningAlg, Timestamp};

/// What an authorization code stands for (Core 3.1.2.5); stored under the hash of the code.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CodeGrant {
    pub client_id: ClientId,
    pub user_id: String,
    pub redirect_uri: RedirectUri,
    pub scope: ScopeSet,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    /// The `claims` request parameter (Core 5.5), for the ID Token and UserInfo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimsRequest>,
    #[serde(flatten)]
    pub auth: Authentication,
    /// All tokens issued from this code share this id, so a replayed code revokes them (RFC 6749 4.1.2).
    pub grant_id: String,
    pub expires_at: Timestamp,
    /// RFC 9449 10 `dpop_jkt`: the code is redeemed only with a DPoP proof of this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// RFC 8707: the resources the authorization request named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
}

/// What a presented code or refresh token is found to be, before anything is spent.
#[derive(Debug)]
pub enum Lookup<T> {
    /// Known and not yet used (a refresh token: also unexpired).
    Live(Box<T>),
    /// Used before: presenting it again is a replay, and the grant it belongs to must be revoked
    /// (RFC 6749 4.1.2 for codes, RFC 9700 4.14.2 for refresh tokens).
    Spent {
        grant_id: String,
    },
    Unknown,
}

/// The outcome of storing the tokens of an exchange that spends a code or a refresh token.
#[derive(Debug, PartialEq, Eq)]
pub enum Issuance {
    Issued,
    /// The code or refresh token had been spent (by a concurrent request): the grant is now revoked
    /// and nothing was issued.
    Replayed,
    /// The code or refresh token no longer exists (expired and swept, or revoked).
    Unknown,
    /// The grant was revoked meanwhile (a replay elsewhere): nothing was issued.
    Revoked,
}

/// An access token, stored under its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessToken {
    pub client_id: ClientId,
    /// None for `client_credentials` tokens, which act for the client itself.
    pub user_id: Option<String>,
    pub scope: ScopeSet,
    /// The grant it belongs to: None for `client_credentials` tokens, which no grant revocation can
    /// reach (the client revokes them one by one), so they need no indexed grant key.
    pub grant_id: Option<String>,
    pub expires_at: Timestamp,
    /// The grant's claims request: the UserInfo claims asked for one by one and their languages.
    pub claims: Option<ClaimsRequest>,
    /// DPoP (RFC 9449): the thumbprint of the key the token is bound to; None for a bearer token.
    pub jkt: Option<String>,
    /// RFC 8707: the resource servers the token is for (its `aud`); empty for the OP's own use.
    pub audience: Vec<String>,
    /// When it was issued (None for tokens stored before this was kept).
    pub issued_at: Option<Timestamp>,
}

/// A refresh token, stored under its hash. All rotations of one grant share `grant_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshToken {
    pub client_id: ClientId,
    pub user_id: String,
    pub scope: ScopeSet,
    pub grant_id: String,
    pub auth: Authentication,
    pub expires_at: Timestamp,
    /// The grant's `claims` request (Core 5.5), honoured again on every refresh.
    pub claims: Option<ClaimsRequest>,
    /// DPoP (RFC 9449 5): a public client's refresh token is bound to its key.
    pub jkt: Option<String>,
    /// RFC 8707: the resources the grant was authorized for; refreshes may narrow, never widen.
    pub resources: Vec<String>,
}

/// What a user has allowed a client: scopes, and claims requested one by one (Core 5.5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consent {
    pub scope: ScopeSet,
    pub claims: BTreeSet<String>,
}

/// An app a user has consented to, as their account page lists it.
#[derive(Debug, Clone)]
pub struct ConsentedApp {
    pub client_id: ClientId,
    pub client_name: String,
    pub consent: Consent,
    pub granted_at: Timestamp,
}

/// A client's request that a user decides elsewhere: a device's (RFC 8628 3.1), or a backchannel
/// authentication request (CIBA 7). The client polls with a code kept here by its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoupledAuthorization {
    pub code_hash: String,
    /// Device flow: the code the user types, normalized (upper case, no dash).
    pub user_code: Option<String>,
    /// CIBA: the user asked (identified by the client's hint).
    pub for_user: Option<String>,
    pub client_id: ClientId,
    pub scope: ScopeSet,
    /// The tokens issued share this id (a revocation takes them all).
    pub grant_id: String,
    pub expires_at: Timestamp,
    /// Seconds the client must wait between polls (RFC 8628 3.5, CIBA 7.3: raised by `slow_down`).
    pub interval: i64,
    pub decision: UserDecision,
    /// CIBA 7.1 `binding_message`: shown to the user on both devices.
    pub binding_message: Option<String>,
    /// CIBA ping mode: what the client's notification carries (CIBA 10.2).
    pub ping: Option<Ping>,
}

/// A CIBA ping (CIBA 10.2): the client's bearer token for its notification endpoint, and the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    pub client_notification_token: String,
    pub auth_req_id: String,
}

/// Where a decoupled authorization stands.
#[derive(Debug, Clone, PartialEq)]
pub enum UserDecision {
    Pending,
    Approved { user_id: String, auth: Authentication },
    Denied,
}

/// What a client's poll finds (RFC 8628 3.5, CIBA 11).
#[derive(Debug, Clone, PartialEq)]
pub enum DecoupledPoll {
    /// No such device code for this client, or one already used.
    Unknown,
    Expired,
    /// Polled faster than the interval: the interval is now longer.
    SlowDown,
    Waiting(Box<DecoupledAuthorization>),
}

/// A resource server: an API that accepts oxid's access tokens (RFC 8707), named by its URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceServer {
    /// The absolute URI clients name it by (`resource`), and the tokens' `aud`.
    pub identifier: String,
    pub name: String,
    /// Scopes it defines: requestable only for it.
    pub scopes: ScopeSet,
    pub token_format: TokenFormat,
    /// How its JWT access tokens are signed (RFC 9068 2.1: RS256 unless it wants another).
    pub signing_alg: SigningAlg,
    /// Seconds its access tokens live, when not the OP's default.
    pub access_token_lifetime: Option<u64>,
    /// The hash of the secret it introspects with (as a client authenticates with client_secret_basic).
    pub secret_hash: Option<String>,
    /// Its public keys (a JWK Set), to introspect with a signed assertion instead (RFC 7523, as
    /// `private_key_jwt`).
    pub jwks: Option<String>,
    pub created_at: Timestamp,
}

/// How access tokens for a resource look: opaque (checked by introspection) or RFC 9068 JWTs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFormat {
    Opaque,
    Jwt,
}

impl TokenFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opaque => "opaque",
            Self::Jwt => "jwt",
        }
    }
}

impl std::str::FromStr for TokenFormat {
    type Err = super::InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "opaque" => Ok(Self::Opaque),
            "jwt" => Ok(Self::Jwt),
            _ => Err(super::InvalidValue(format!("token format must be opaque or jwt, not {s}"))),
        }
    }
}
