//! Protocol vocabulary as types: identifiers, scopes, redirect URIs, grant and response types.
//!
//! Everything that crosses the wire as a string is parsed into one of these at the edge, so that the
//! protocol logic never handles an unchecked value.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest client id, username or similar identifier oxid accepts.
pub const MAX_IDENTIFIER_LEN: usize = 128;

/// Error for a value that does not parse into one of the protocol types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

fn invalid(msg: impl Into<String>) -> InvalidValue {
    InvalidValue(msg.into())
}

/// RFC 6749 Appendix A.1: client_id = *VSCHAR (printable ASCII).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

impl ClientId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClientId {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, InvalidValue> {
        if s.is_empty() || s.len() > MAX_IDENTIFIER_LEN {
            return Err(invalid("client_id must be 1 to 128 characters"));
        }
        if !s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(invalid("client_id must be printable ASCII"));
        }
        Ok(Self(s))
    }
}

impl FromStr for ClientId {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        Self::try_from(s.to_owned())
    }
}

impl From<ClientId> for String {
    fn from(c: ClientId) -> String {
        c.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A registered redirection URI: absolute, without fragment (RFC 6749 3.1.2). Compared as an exact
/// string (RFC 9700 2.1, Core 3.1.2.1), so the original spelling is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RedirectUri(String);

impl RedirectUri {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL to redirect to with `params` appended to the query (RFC 6749 4.1.2: keep existing query).
    pub fn with_query(&self, params: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&self.0).expect("validated at construction");
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
        }
        url.into()
    }
}

impl RedirectUri {
    /// The URL to redirect to with `params` in the fragment (Multiple Response Type Encoding Practices 2.1).
    pub fn with_fragment(&self, params: &[(&str, &str)]) -> String {
        let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        format!("{}#{encoded}", self.0)
    }

    /// A Content-Security-Policy source matching this URI, for the `form-action` of a form_post page:
    /// scheme, host, port and path for http(s) (CSP sources carry no query), the bare scheme otherwise.
    pub fn csp_source(&self) -> String {
        let url = url::Url::parse(&self.0).expect("validated at construction");
        let path = url.path();
        match url.scheme() {
            "http" | "https" if !path.contains([';', ',', ' ']) => {
                format!("{}{}", url.origin().ascii_serialization(), path)
            }
            "http" | "https" => url.origin().ascii_serialization(),
            scheme => format!("{scheme}:"),
        }
    }
}

impl TryFrom<String> for RedirectUri {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, InvalidValue> {
        if s.len() > 2048 {
            return Err(invalid("redirect_uri is too long"));
        }
        let url = url::Url::parse(&s).map_err(|_| invalid("redirect_uri must be an absolute URI"))?;
        if url.fragment().is_some() {
            return Err(invalid("redirect_uri must not contain a fragment"));
        }
        if url.cannot_be_a_base() && url.scheme() != "urn" {
            return Err(invalid("redirect_uri must be a hierarchical URI"));
        }
        Ok(Self(s))
    }
}

impl FromStr for RedirectUri {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        Self::try_from(s.to_owned())
    }
}

impl From<RedirectUri> for String {
    fn from(r: RedirectUri) -> String {
        r.0
    }
}

/// The scopes oxid gives meaning to (Core 5.4, Core 11).
/// A set of scope tokens (RFC 6749 3.3), kept sorted so equal sets compare and print equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    /// Parses a space-delimited scope string; every token must be `1*( %x21 / %x23-5B / %x5D-7E )`.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let mut set = BTreeSet::new();
        for token in s.split(' ').filter(|t| !t.is_empty()) {
            let valid = token.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
            if !valid || token.len() > MAX_IDENTIFIER_LEN {
                return Err(invalid("scope contains an invalid token"));
            }
            set.insert(token.to_owned());
        }
        Ok(Self(set))
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Keeps only the scopes oxid supports (Core 3.1.2.1: unknown scope values SHOULD be ignored).
    /// The scopes `keep` accepts.
    pub fn retain(mut self, keep: impl Fn(&str) -> bool) -> Self {
        self.0.retain(|s| keep(s));
        self
    }

    pub fn union(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet(self.0.union(&other.0).cloned().collect())
    }

    pub fn without(mut self, scope: &str) -> Self {
        self.0.remove(scope);
        self
    }
}

impl FromStr for ScopeSet {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        Self::parse(s)
    }
}

impl TryFrom<String> for ScopeSet {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, InvalidValue> {
        Self::parse(&s)
    }
}

impl From<ScopeSet> for String {
    fn from(s: ScopeSet) -> String {
        s.to_string()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
        }
        Ok(())
    }
}

/// Declares a closed string enum with its wire names, `FromStr`, `Display` and serde as the wire name.
macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $wire)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, InvalidValue> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    _ => Err(InvalidValue(format!("unsupported {}: {s}", stringify!($name)))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// OAuth 2.0 grant types oxid implements at the token endpoint (`DeviceCode`: RFC 8628 3.4; `Ciba`:
    /// CIBA 10.1; `TokenExchange`: RFC 8693 2.1).
    GrantType {
        AuthorizationCode = "authorization_code",
        RefreshToken = "refresh_token",
        ClientCredentials = "client_credentials",
        DeviceCode = "urn:ietf:params:oauth:grant-type:device_code",
        Ciba = "urn:openid:params:grant-type:ciba",
        TokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange",
    }
);

wire_enum!(
    /// CIBA 5 `backchannel_token_delivery_mode`: the client polls, or is pinged, then fetches the tokens.
    /// (Push mode, tokens sent to the client, is not offered.)
    CibaDeliveryMode {
        Poll = "poll",
        Ping = "ping",
    }
);

/// The response types oxid offers at the authorization endpoint (Core 3; OAuth 2.0 Multiple Response
/// Type Encoding Practices 3 and 5). A request names a set of values in any order; each set is one
/// variant, written in its canonical order. Bare `token` (OAuth 2.0 implicit without OpenID) is not
/// offered (RFC 9700 2.1.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ResponseType {
    #[default]
    Code,
    IdToken,
    IdTokenToken,
    CodeIdToken,
    CodeToken,
    CodeIdTokenToken,
    None,
}

impl ResponseType {
    pub const ALL: &'static [ResponseType] = &[
        ResponseType::Code,
        ResponseType::IdToken,
        ResponseType::IdTokenToken,
        ResponseType::CodeIdToken,
        ResponseType::CodeToken,
        ResponseType::CodeIdTokenToken,
        ResponseType::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResponseType::Code => "code",
            ResponseType::IdToken => "id_token",
            ResponseType::IdTokenToken => "id_token token",
            ResponseType::CodeIdToken => "code id_token",
            ResponseType::CodeToken => "code token",
            ResponseType::CodeIdTokenToken => "code id_token token",
            ResponseType::None => "none",
        }
    }

    /// An authorization code is returned.
    pub fn has_code(self) -> bool {
        matches!(self, Self::Code | Self::CodeIdToken | Self::CodeToken | Self::CodeIdTokenToken)
    }

    /// An ID Token is returned from the authorization endpoint.
    pub fn has_id_token(self) -> bool {
        matches!(self, Self::IdToken | Self::IdTokenToken | Self::CodeIdToken | Self::CodeIdTokenToken)
    }

    /// An access token is returned from the authorization endpoint.
    pub fn has_token(self) -> bool {
        matches!(self, Self::IdTokenToken | Self::CodeToken | Self::CodeIdTokenToken)
    }

    /// A token (ID Token or access token) comes from the authorization endpoint: the implicit grant
    /// (Registration 2 `grant_types`).
    pub fn is_front_channel_token(self) -> bool {
        self.has_id_token() || self.has_token()
    }

    /// Multiple Response Type Encoding Practices 2.1, 3, 5: query for `code` and `none`, fragment for
    /// everything that returns a token from the authorization endpoint.
    pub fn default_mode(self) -> ResponseMode {
        if self.is_front_channel_token() { ResponseMode::Fragment } else { ResponseMode::Query }
    }

    /// The default mode for a `response_type` value that may not be valid: fragment when it names a
    /// token, so that errors about such requests never put anything token-like in a query.
    pub fn default_mode_for(raw: &str) -> ResponseMode {
        if raw.split(' ').any(|v| v == "token" || v == "id_token") {
            ResponseMode::Fragment
        } else {
            ResponseMode::Query
        }
    }
}

impl FromStr for ResponseType {
    type Err = InvalidValue;
    /// Multiple Response Type Encoding Practices 5: the values are a space-separated set, order
    /// irrelevant; `none` stands alone.
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        let (mut code, mut id_token, mut token, mut none) = (false, false, false, false);
        for value in s.split(' ') {
            let seen = match value {
                "code" => &mut code,
                "id_token" => &mut id_token,
                "token" => &mut token,
                "none" => &mut none,
                _ => return Err(invalid(format!("unsupported response_type: {s}"))),
            };
            if std::mem::replace(seen, true) {
                return Err(invalid("response_type repeats a value"));
            }
        }
        Ok(match (code, id_token, token, none) {
            (true, false, false, false) => Self::Code,
            (false, true, false, false) => Self::IdToken,
            (false, true, true, false) => Self::IdTokenToken,
            (true, true, false, false) => Self::CodeIdToken,
            (true, false, true, false) => Self::CodeToken,
            (true, true, true, false) => Self::CodeIdTokenToken,
            (false, false, false, true) => Self::None,
            _ => return Err(invalid(format!("unsupported response_type: {s}"))),
        })
    }
}

impl TryFrom<String> for ResponseType {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, InvalidValue> {
        s.parse()
    }
}

impl From<ResponseType> for String {
    fn from(r: ResponseType) -> String {
        r.as_str().to_owned()
    }
}

impl fmt::Display for ResponseType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

wire_enum!(
    /// How the authorization response reaches the client (OAuth 2.0 Multiple Response Type Encoding
    /// Practices 2.1; OAuth 2.0 Form Post Response Mode).
    ResponseMode {
        Query = "query",
        Fragment = "fragment",
        FormPost = "form_post",
    }
);

impl Default for ResponseMode {
    /// The default for `response_type=code` (Multiple Response Type Encoding Practices 2.1).
    fn default() -> Self {
        ResponseMode::Query
    }
}

wire_enum!(
    /// Token endpoint client authentication methods (Core 9).
    ClientAuthMethod {
        ClientSecretBasic = "client_secret_basic",
        ClientSecretPost = "client_secret_post",
        ClientSecretJwt = "client_secret_jwt",
        PrivateKeyJwt = "private_key_jwt",
        None = "none",
    }
);

wire_enum!(
    /// JWS algorithms oxid signs with (RFC 7518 3, RFC 8037). `Ed25519` is the fully-specified name of
    /// EdDSA over Ed25519 (RFC 9864), which libraries now prefer to the polymorphic `EdDSA`.
    SigningAlg {
        RS256 = "RS256",
        ES256 = "ES256",
        EdDSA = "EdDSA",
        Ed25519 = "Ed25519",
        PS256 = "PS256",
    }
);

wire_enum!(
    /// How the OP shows its pages (Core 3.1.2.1 `display`).
    Display {
        Page = "page",
        Popup = "popup",
        Touch = "touch",
        Wap = "wap",
    }
);

wire_enum!(
    /// JWE key management algorithms oxid encrypts to clients with (RFC 7518 4.3, 4.6).
    KeyEncryptionAlg {
        RsaOaep = "RSA-OAEP",
        RsaOaep256 = "RSA-OAEP-256",
        EcdhEs = "ECDH-ES",
        EcdhEsA128kw = "ECDH-ES+A128KW",
        EcdhEsA256kw = "ECDH-ES+A256KW",
    }
);

wire_enum!(
    /// JWE content encryption algorithms (RFC 7518 5).
    ContentEncryption {
        A128CbcHs256 = "A128CBC-HS256",
        A256CbcHs512 = "A256CBC-HS512",
        A128Gcm = "A128GCM",
        A256Gcm = "A256GCM",
    }
);

/// How a response is encrypted to a client: key management and content encryption (Registration 2:
/// `enc` defaults to A128CBC-HS256 when only `alg` is registered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    pub alg: KeyEncryptionAlg,
    pub enc: ContentEncryption,
}

wire_enum!(
    /// Registration 2 `application_type`: a web site, or an app on the user's device (RFC 8252).
    ApplicationType {
        Web = "web",
        Native = "native",
    }
);

wire_enum!(
    /// JWS algorithms of client assertions (RFC 7523; Registration 2 `token_endpoint_auth_signing_alg`):
    /// asymmetric for `private_key_jwt`, HMAC for `client_secret_jwt`.
    AssertionAlg {
        RS256 = "RS256",
        PS256 = "PS256",
        ES256 = "ES256",
        EdDSA = "EdDSA",
        HS256 = "HS256",
        HS384 = "HS384",
        HS512 = "HS512",
    }
);

impl AssertionAlg {
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }
}

wire_enum!(
    /// Core 8: how a client sees users' `sub`.
    SubjectType {
        Public = "public",
        Pairwise = "pairwise",
    }
);

// wire_enum! derives a fixed set of traits, so the default is written out.
#[allow(clippy::derivable_impls)]
impl Default for SubjectType {
    fn default() -> Self {
        SubjectType::Public
    }
}

wire_enum!(
    /// Values of the `prompt` parameter (Core 3.1.2.1; `create` from Initiating User Registration via
    /// OpenID Connect 1.0).
    Prompt {
        None = "none",
        Login = "login",
        Consent = "consent",
        SelectAccount = "select_account",
        Create = "create",
    }
);

impl ClientAuthMethod {
    /// Methods that prove possession of a secret or key; `none` is for public clients.
    pub fn is_confidential(self) -> bool {
        self != ClientAuthMethod::None
    }

    /// Methods that authenticate with a secret the OP issues.
    pub fn uses_secret(self) -> bool {
        matches!(self, Self::ClientSecretBasic | Self::ClientSecretPost | Self::ClientSecretJwt)
    }
}

/// Registration 2 `request_object_signing_alg`: a JWS algorithm, or `none` for unsigned request objects
/// (Core 6.1), which a client must opt into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RequestObjectAlg {
    None,
    Signed(SigningAlg),
}

impl FromStr for RequestObjectAlg {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        if s == "none" { Ok(Self::None) } else { s.parse().map(Self::Signed) }
    }
}

impl TryFrom<String> for RequestObjectAlg {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, InvalidValue> {
        s.parse()
    }
}

impl From<RequestObjectAlg> for String {
    fn from(a: RequestObjectAlg) -> String {
        a.to_string()
    }
}

impl fmt::Display for RequestObjectAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Signed(alg) => f.write_str(alg.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_types_are_sets_in_any_order() {
        assert_eq!("token id_token code".parse(), Ok(ResponseType::CodeIdTokenToken));
        assert_eq!("id_token code".parse(), Ok(ResponseType::CodeIdToken));
        assert_eq!(ResponseType::CodeIdToken.to_string(), "code id_token");
        assert_eq!("code code".parse::<ResponseType>(), Err(invalid("response_type repeats a value")));
        for bad in ["token", "none code", "", "code  id_token", "Code"] {
            assert_eq!(bad.parse::<ResponseType>(), Err(invalid(format!("unsupported response_type: {bad}"))));
        }
        assert_eq!(ResponseType::Code.default_mode(), ResponseMode::Query);
        assert_eq!(ResponseType::None.default_mode(), ResponseMode::Query);
        assert_eq!(ResponseType::CodeToken.default_mode(), ResponseMode::Fragment);
        assert_eq!(ResponseType::default_mode_for("token bogus"), ResponseMode::Fragment);
    }

    #[test]
    fn scope_set_parses_sorts_and_rejects_bad_tokens() {
        let s = ScopeSet::parse("openid  email profile").unwrap();
        assert_eq!(s.to_string(), "email openid profile");
        for bad in ["open\"id", "a\\b"] {
            assert_eq!(ScopeSet::parse(bad), Err(invalid("scope contains an invalid token")), "{bad}");
        }
        assert!(s.contains("email"));
        assert!(ScopeSet::parse("openid").unwrap().is_subset(&s));
    }

    #[test]
    fn redirect_uri_rules() {
        let fragment = RedirectUri::from_str("https://rp.example/cb#x");
        assert_eq!(fragment, Err(invalid("redirect_uri must not contain a fragment")));
        assert_eq!(RedirectUri::from_str("/relative"), Err(invalid("redirect_uri must be an absolute URI")));
        let r = RedirectUri::from_str("https://rp.example/cb?a=1").unwrap();
        assert_eq!(r.with_query(&[("code", "x y")]), "https://rp.example/cb?a=1&code=x+y");
    }

    #[test]
    fn wire_enums_round_trip() {
        for g in GrantType::ALL {
            assert_eq!(g.as_str().parse::<GrantType>().unwrap(), *g);
        }
        assert_eq!("password".parse::<GrantType>(), Err(invalid("unsupported GrantType: password")));
        assert!("ES256".parse::<SigningAlg>().is_ok());
    }
}
