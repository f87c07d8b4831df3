//! Registered clients and their metadata (Registration 1.0 2).

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::{
    ApplicationType, AssertionAlg, ClientAuthMethod, ClientId, Encryption, GrantType, RedirectUri, RequestObjectAlg,
    ResponseType, ScopeSet, SigningAlg, SubjectType, Timestamp,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: ClientId,
    pub name: String,
    /// Hash of the client secret (see `crypto::token_hash`); None for public clients and
    /// private_key_jwt clients.
    pub secret_hash: Option<String>,
    /// The secret itself, kept only for `client_secret_jwt`, whose HMAC needs it (Core 9).
    pub secret_for_jwt: Option<String>,
    pub redirect_uris: Vec<RedirectUri>,
    pub grant_types: Vec<GrantType>,
    pub auth_method: ClientAuthMethod,
    pub id_token_signed_response_alg: SigningAlg,
    /// The client's public keys (JWK Set JSON) for `private_key_jwt`.
    pub jwks: Option<String>,
    pub skip_consent: bool,
    pub created_at: Timestamp,
    pub metadata: ClientMetadata,
}

/// Registration metadata (Dynamic Registration 1.0 2) beyond what every client has; stored as one JSON
/// object so that a new field needs only a serde default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientMetadata {
    /// The response types the client may use (Registration 2 `response_types`; default `code`).
    pub response_types: Vec<ResponseType>,
    /// Registration 2 `default_max_age`: `max_age` for requests that do not give one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_max_age: Option<u32>,
    /// Core 8: `public` or `pairwise` subject identifiers.
    pub subject_type: SubjectType,
    /// Registration 2 `sector_identifier_uri`, as registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sector_identifier_uri: Option<String>,
    /// The sector pairwise subjects are computed for (Core 8.1), settled at registration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sector_identifier: Option<String>,
    /// Registration 2 `jwks_uri`: where the client publishes its keys (instead of inline `jwks`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Registration 2 `request_object_signing_alg`: when set, request objects must use it; `none` is
    /// accepted only when registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_object_signing_alg: Option<RequestObjectAlg>,
    /// Registration 2 `request_uris`: the only `request_uri` values accepted (Core 6.2).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_uris: Vec<String>,
    /// Registration 2 `id_token_encrypted_response_alg`/`_enc`: ID Tokens signed, then encrypted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token_encryption: Option<Encryption>,
    /// Registration 2 `userinfo_signed_response_alg`: UserInfo as a JWT signed with this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userinfo_signed_response_alg: Option<SigningAlg>,
    /// Registration 2 `userinfo_encrypted_response_alg`/`_enc`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userinfo_encryption: Option<Encryption>,
    /// Registration 2 `initiate_login_uri`: where a third party starts a login at the client (Core 4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiate_login_uri: Option<String>,
    /// RFC 7591 2 `scope`: the scopes the client may obtain for itself with `client_credentials` (and
    /// the default when such a request names none).
    #[serde(skip_serializing_if = "ScopeSet::is_empty")]
    pub scope: ScopeSet,
    /// RP-Initiated Logout 3.1 `post_logout_redirect_uris`: where a logout may return to, compared exactly.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    /// Front-Channel Logout 2 `frontchannel_logout_uri` and `frontchannel_logout_session_required`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frontchannel_logout: Option<LogoutUri>,
    /// Back-Channel Logout 2.2 `backchannel_logout_uri` and `backchannel_logout_session_required`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backchannel_logout: Option<LogoutUri>,
    /// Registration 2 `application_type`.
    pub application_type: ApplicationType,
    /// Registration 2 `contacts`: people responsible for the client (email addresses).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    /// What the consent page shows about the client, per language (Registration 2.1).
    #[serde(skip_serializing_if = "ClientPresentation::is_empty")]
    pub presentation: ClientPresentation,
    /// Registration 2 `token_endpoint_auth_signing_alg`: client assertions must use it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg: Option<AssertionAlg>,
    /// Registration 2 `require_auth_time` (oxid always includes `auth_time`; kept to echo it).
    pub require_auth_time: bool,
    /// Registration 2 `default_acr_values`, in order of preference.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub default_acr_values: Vec<String>,
    /// Registration 2 `request_object_encryption_alg`/`_enc`: how the client may encrypt request
    /// objects to the OP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_object_encryption: Option<Encryption>,
    /// RFC 7591 2 `software_id` and `software_version`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// How the client came to be: made by the operator, or registered over HTTP.
    pub origin: ClientOrigin,
    /// RFC 9126 6 `require_pushed_authorization_requests`: its authorization requests must be pushed.
    pub require_pushed_authorization_requests: bool,
    /// RFC 9449 5.2 `dpop_bound_access_tokens`: its access tokens must be DPoP-bound.
    pub dpop_bound_access_tokens: bool,
    /// The `acr` every sign-in to this client must reach (the operator's `--require-acr`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_acr: Option<String>,
    /// CIBA 4 `backchannel_token_delivery_mode` and `backchannel_client_notification_endpoint` (ping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ciba: Option<CibaDelivery>,
}

/// How a CIBA client learns that the user decided (CIBA 5): by polling, or pinged at its endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum CibaDelivery {
    Poll,
    Ping { notification_endpoint: String },
}

/// Human-readable values of a client per language tag (Registration 2.1: `client_name#de`); the
/// empty tag holds the value without one.
pub type Localized = BTreeMap<String, String>;

/// What users see of a client: its name in other languages (the default name is `Client::name`), logo
/// and links.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientPresentation {
    #[serde(skip_serializing_if = "Localized::is_empty")]
    pub client_name: Localized,
    #[serde(skip_serializing_if = "Localized::is_empty")]
    pub logo_uri: Localized,
    #[serde(skip_serializing_if = "Localized::is_empty")]
    pub client_uri: Localized,
    #[serde(skip_serializing_if = "Localized::is_empty")]
    pub policy_uri: Localized,
    #[serde(skip_serializing_if = "Localized::is_empty")]
    pub tos_uri: Localized,
}

impl ClientPresentation {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// The value for the first of `languages` (preferred first) that has one, else the untagged one.
pub fn localized<'a>(values: &'a Localized, languages: &[&str]) -> Option<&'a str> {
    let by_tag = |tag: &str| values.iter().find(|(t, _)| t.eq_ignore_ascii_case(tag)).map(|(_, v)| v.as_str());
    languages.iter().find_map(|tag| by_tag(tag)).or_else(|| values.get("").map(String::as_str))
}

/// How a client was made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum ClientOrigin {
    /// `oxid client add`.
    #[default]
    Operator,
    /// The registration endpoint (Registration 1.0, RFC 7591); managed with its registration access
    /// token (RFC 7592), kept as a hash.
    Registration { access_token_hash: String },
}

/// Where an RP is told that a session at the OP ended (Front-Channel Logout 2, Back-Channel Logout 2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutUri {
    /// Absolute, without a fragment; its query is kept when parameters are added.
    pub uri: RedirectUri,
    /// The RP needs `iss` and `sid` (front channel) or `sid` (back channel) to know which session.
    pub session_required: bool,
}

impl Default for ClientMetadata {
    fn default() -> Self {
        Self {
            response_types: vec![ResponseType::Code],
            default_max_age: None,
            subject_type: SubjectType::Public,
            sector_identifier_uri: None,
            sector_identifier: None,
            jwks_uri: None,
            request_object_signing_alg: None,
            request_uris: Vec::new(),
            id_token_encryption: None,
            userinfo_signed_response_alg: None,
            userinfo_encryption: None,
            initiate_login_uri: None,
            scope: ScopeSet::default(),
            post_logout_redirect_uris: Vec::new(),
            frontchannel_logout: None,
            backchannel_logout: None,
            application_type: ApplicationType::Web,
            contacts: Vec::new(),
            presentation: ClientPresentation::default(),
            token_endpoint_auth_signing_alg: None,
            require_auth_time: false,
            default_acr_values: Vec::new(),
            request_object_encryption: None,
            software_id: None,
            software_version: None,
            origin: ClientOrigin::Operator,
            require_pushed_authorization_requests: false,
            dpop_bound_access_tokens: false,
            ciba: None,
            required_acr: None,
        }
    }
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.auth_method == ClientAuthMethod::None
    }

    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// The name users see: in the first of `languages` the client registered one in, else its name.
    pub fn name_in(&self, languages: &[&str]) -> &str {
        localized(&self.metadata.presentation.client_name, languages).unwrap_or(&self.name)
    }

    pub fn allows_response_type(&self, response_type: ResponseType) -> bool {
        self.metadata.response_types.contains(&response_type)
    }
}

/// A token the operator hands out to let one party register clients (RFC 7591 3: the initial access
/// token), stored by hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialAccessToken {
    /// A short public name, for listing and revoking.
    pub id: String,
    pub token_hash: String,
    pub created_at: Timestamp,
    /// None: never expires.
    pub expires_at: Option<Timestamp>,
    /// Registrations it may still make; None: any number.
    pub uses_left: Option<u32>,
}
