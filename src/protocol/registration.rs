//! Client registration rules: the client metadata of OpenID Connect Dynamic Client Registration 1.0
//! section 2 and RFC 7591 section 2, read from their JSON form, checked, and turned into a client; and
//! the JSON a registration answers with (RFC 7591 3.2.1, RFC 7592 3). The registration endpoint and
//! `oxid client add` both go through `client_from_metadata`, so one set of rules holds for both.
//!
//! Fields are read one by one from the JSON object, not through a derived struct, so that an error
//! names the field (RFC 7591 3.2.2) and language-tagged variants (`client_name#de`) are found.

use serde_json::{Map, Value, json};

use super::{ErrorCode, OAuthError};
use crate::fetch::is_https_or_loopback;
use crate::model::{
    ApplicationType, AssertionAlg, CibaDelivery, CibaDeliveryMode, Client, ClientAuthMethod, ClientId, ClientMetadata,
    ClientOrigin, ClientPresentation, ContentEncryption, Encryption, GrantType, KeyEncryptionAlg, Localized, LogoutUri,
    RedirectUri, RequestObjectAlg, ResponseType, ScopeSet, SigningAlg, SubjectType, Timestamp,
};

/// Longest string value accepted in a field, and most values in a list field.
const MAX_VALUE_LEN: usize = 2048;
const MAX_LIST_LEN: usize = 64;
/// Registration 2: the `enc` used when only an `alg` is registered.
const DEFAULT_ENC: ContentEncryption = ContentEncryption::A128CbcHs256;

fn invalid(field: &str, problem: impl std::fmt::Display) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, format!("{field}: {problem}"))
}

fn invalid_redirect_uri(problem: impl std::fmt::Display) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRedirectUri, format!("redirect_uris: {problem}"))
}

/// Typed access to the fields of a metadata document; every error names its field.
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn string(&self, name: &str) -> Result<Option<&'a str>, OAuthError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.len() <= MAX_VALUE_LEN => Ok(Some(s)),
            Some(Value::String(_)) => Err(invalid(name, format!("longer than {MAX_VALUE_LEN} bytes"))),
            Some(_) => Err(invalid(name, "must be a string")),
        }
    }

    fn strings(&self, name: &str) -> Result<Vec<&'a str>, OAuthError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(values)) if values.len() <= MAX_LIST_LEN => values
                .iter()
                .map(|v| match v {
                    Value::String(s) if s.len() <= MAX_VALUE_LEN => Ok(s.as_str()),
                    _ => Err(invalid(name, "must be an array of strings")),
                })
                .collect(),
            Some(Value::Array(_)) => Err(invalid(name, format!("more than {MAX_LIST_LEN} values"))),
            Some(_) => Err(invalid(name, "must be an array of strings")),
        }
    }

    fn bool(&self, name: &str) -> Result<bool, OAuthError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(invalid(name, "must be true or false")),
        }
    }

    fn seconds(&self, name: &str) -> Result<Option<u32>, OAuthError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| invalid(name, "must be a number of seconds")),
            Some(_) => Err(invalid(name, "must be a number of seconds")),
        }
    }

    /// A closed-vocabulary value (an algorithm, a method, a type).
    fn parsed<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, OAuthError> {
        match self.string(name)? {
            Some(raw) => raw.parse().map(Some).map_err(|_| invalid(name, format!("{raw:?} is not supported"))),
            None => Ok(None),
        }
    }

    /// A field and its language-tagged variants (Registration 2.1), each checked by `check`.
    fn localized(
        &self,
        name: &str,
        check: impl Fn(&str, &str) -> Result<(), OAuthError>,
    ) -> Result<Localized, OAuthError> {
        let mut values = Localized::new();
        for (key, _) in self.0.iter() {
            let tag = match key.split_once('#') {
                Some((field, tag)) if field == name && is_language_tag(tag) => tag,
                None if key == name => "",
                _ => continue,
            };
            if let Some(value) = self.string(key)? {
                check(key, value)?;
                values.insert(tag.to_owned(), value.to_owned());
            }
        }
        Ok(values)
    }

    /// An encryption pair (Registration 2: `enc` without `alg` is an error; `alg` alone gets the default).
    fn encryption(&self, alg: &str, enc: &str) -> Result<Option<Encryption>, OAuthError> {
        match (self.parsed::<KeyEncryptionAlg>(alg)?, self.parsed::<ContentEncryption>(enc)?) {
            (Some(alg), enc) => Ok(Some(Encryption { alg, enc: enc.unwrap_or(DEFAULT_ENC) })),
            (None, Some(_)) => Err(invalid(enc, format!("needs {alg}"))),
            (None, None) => Ok(None),
        }
    }
}

/// BCP 47 in the shape Registration 2.1 uses (`de`, `en-US`, `zh-Hant-TW`): letters, digits and hyphens.
fn is_language_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 35
        && tag.split('-').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// An absolute https URL (http only on loopback, for development), without a fragment.
fn https_url(field: &str, value: &str) -> Result<url::Url, OAuthError> {
    let url = url::Url::parse(value).map_err(|e| invalid(field, e))?;
    if !is_https_or_loopback(&url) || url.fragment().is_some() {
        return Err(invalid(field, "must be an https URL without a fragment"));
    }
    Ok(url)
}

fn is_loopback_url(url: &url::Url) -> bool {
    is_https_or_loopback(url) && url.scheme() == "http"
}

/// Registration 2 `redirect_uris`, by application type. Web clients: https (http on loopback only,
/// for development), and for implicit or hybrid flows https away from localhost. Native clients: a
/// private-use scheme or an http loopback address (RFC 8252 7.1, 7.3).
fn check_redirect_uri(
    uri: &RedirectUri,
    application_type: ApplicationType,
    front_channel_tokens: bool,
) -> Result<(), OAuthError> {
    let url = url::Url::parse(uri.as_str()).map_err(invalid_redirect_uri)?;
    let uri = uri.as_str();
    match application_type {
        ApplicationType::Web => {
            if front_channel_tokens && (url.scheme() != "https" || url.host_str() == Some("localhost")) {
                return Err(invalid_redirect_uri(format!(
                    "{uri}: a web client with tokens from the authorization endpoint needs https, not localhost"
                )));
            }
            if !is_https_or_loopback(&url) {
                return Err(invalid_redirect_uri(format!("{uri}: a web client needs https (http only on loopback)")));
            }
        }
        ApplicationType::Native => {
            let private_use = !matches!(url.scheme(), "http" | "https") && url.scheme().contains('.');
            if !private_use && !is_loopback_url(&url) {
                return Err(invalid_redirect_uri(format!(
                    "{uri}: a native client needs a private-use scheme (reverse domain name) or an http loopback URL"
                )));
            }
        }
    }
    Ok(())
}

/// A JWK Set in shape (its keys are parsed when used).
fn check_jwks(value: &Value) -> Result<String, OAuthError> {
    let keys = value.get("keys").and_then(Value::as_array).ok_or_else(|| invalid("jwks", "must be a JWK Set"))?;
    if keys.is_empty() || keys.iter().any(|k| k.get("kty").and_then(Value::as_str).is_none()) {
        return Err(invalid("jwks", "must be a JWK Set of keys with kty"));
    }
    if keys.iter().any(|k| k.get("d").is_some()) {
        return Err(invalid("jwks", "holds a private key"));
    }
    Ok(value.to_string())
}

fn logout_uri(doc: &Fields<'_>, uri: &str, session_required: &str) -> Result<Option<LogoutUri>, OAuthError> {
    let Some(value) = doc.string(uri)? else {
        if doc.bool(session_required)? {
            return Err(invalid(session_required, format!("needs {uri}")));
        }
        return Ok(None);
    };
    https_url(uri, value)?;
    let parsed: RedirectUri = value.parse().map_err(|e| invalid(uri, e))?;
    Ok(Some(LogoutUri { uri: parsed, session_required: doc.bool(session_required)? }))
}

/// CIBA 4: how a client with the CIBA grant gets its tokens; it authenticates (CIBA 7.1), and signed
/// requests and user codes are not offered.
fn ciba_delivery(
    doc: &Fields<'_>,
    grant_types: &[GrantType],
    auth_method: ClientAuthMethod,
) -> Result<Option<CibaDelivery>, OAuthError> {
    if doc.string("backchannel_authentication_request_signing_alg")?.is_some() {
        return Err(invalid(
            "backchannel_authentication_request_signing_alg",
            "signed CIBA requests are not supported",
        ));
    }
    if doc.bool("backchannel_user_code_parameter")? {
        return Err(invalid("backchannel_user_code_parameter", "CIBA user codes are not supported"));
    }
    let mode: Option<CibaDeliveryMode> = doc.parsed("backchannel_token_delivery_mode")?;
    let endpoint = doc.string("backchannel_client_notification_endpoint")?;
    if !grant_types.contains(&GrantType::Ciba) {
        return match mode {
            Some(_) => Err(invalid("backchannel_token_delivery_mode", format!("needs the {} grant", GrantType::Ciba))),
            None => Ok(None),
        };
    }
    if !auth_method.is_confidential() {
        return Err(invalid("grant_types", "CIBA clients authenticate (CIBA 7.1)"));
    }
    match (mode, endpoint) {
        (None, _) => Err(invalid("backchannel_token_delivery_mode", "is required with the CIBA grant")),
        (Some(CibaDeliveryMode::Poll), _) => Ok(Some(CibaDelivery::Poll)),
        (Some(CibaDeliveryMode::Ping), Some(uri)) => {
            https_url("backchannel_client_notification_endpoint", uri)?;
            Ok(Some(CibaDelivery::Ping { notification_endpoint: uri.to_owned() }))
        }
        (Some(CibaDeliveryMode::Ping), None) => {
            Err(invalid("backchannel_client_notification_endpoint", "is required in ping mode"))
        }
    }
}

/// The client a metadata document describes, checked (Registration 2, RFC 7591 2). Fields oxid does not
/// know are ignored. The caller gives the id and attaches a secret; a pairwise client's sector is
/// settled afterwards (it needs the network).
pub fn client_from_metadata(doc: &Map<String, Value>, id: ClientId, now: Timestamp) -> Result<Client, OAuthError> {
    let doc = Fields(doc);
    let application_type = doc.parsed("application_type")?.unwrap_or(ApplicationType::Web);

    // Registration 2: response_types default to code, grant_types to authorization_code; each response
    // type needs its grant (code: authorization_code; id_token, token: implicit).
    let response_types: Vec<ResponseType> = match doc.0.get("response_types") {
        None | Some(Value::Null) => vec![ResponseType::Code],
        Some(_) => doc
            .strings("response_types")?
            .into_iter()
            .map(|r| r.parse().map_err(|_| invalid("response_types", format!("{r:?} is not supported"))))
            .collect::<Result<_, _>>()?,
    };
    let named_grants = doc.strings("grant_types")?;
    let (mut grant_types, mut implicit) = (Vec::new(), false);
    for grant in if named_grants.is_empty() { vec!["authorization_code"] } else { named_grants } {
        match grant {
            "implicit" => implicit = true,
            other => {
                let grant: GrantType =
                    other.parse().map_err(|_| invalid("grant_types", format!("{other:?} is not supported")))?;
                if !grant_types.contains(&grant) {
                    grant_types.push(grant);
                }
            }
        }
    }
    let front_channel_tokens = response_types.iter().any(|r| r.is_front_channel_token());
    if response_types.iter().any(|r| r.has_code()) && !grant_types.contains(&GrantType::AuthorizationCode) {
        return Err(invalid("grant_types", "response types with a code need authorization_code"));
    }
    if front_channel_tokens && !implicit {
        return Err(invalid("grant_types", "response types with id_token or token need implicit"));
    }

    let redirect_uris: Vec<RedirectUri> = doc
        .strings("redirect_uris")?
        .into_iter()
        .map(|u| u.parse().map_err(|e| invalid_redirect_uri(format!("{u}: {e}"))))
        .collect::<Result<_, _>>()?;
    if !response_types.is_empty() && redirect_uris.is_empty() {
        return Err(invalid_redirect_uri("at least one is needed"));
    }
    for uri in &redirect_uris {
        check_redirect_uri(uri, application_type, front_channel_tokens)?;
    }

    let auth_method = doc.parsed("token_endpoint_auth_method")?.unwrap_or(ClientAuthMethod::ClientSecretBasic);
    if !auth_method.is_confidential() && grant_types.contains(&GrantType::ClientCredentials) {
        return Err(invalid("grant_types", "a client without credentials cannot use client_credentials"));
    }
    let token_endpoint_auth_signing_alg: Option<AssertionAlg> = doc.parsed("token_endpoint_auth_signing_alg")?;
    match (auth_method, token_endpoint_auth_signing_alg) {
        (ClientAuthMethod::PrivateKeyJwt, Some(alg)) if alg.is_hmac() => {
            return Err(invalid("token_endpoint_auth_signing_alg", "private_key_jwt needs an asymmetric algorithm"));
        }
        (ClientAuthMethod::ClientSecretJwt, Some(alg)) if !alg.is_hmac() => {
            return Err(invalid("token_endpoint_auth_signing_alg", "client_secret_jwt needs an HMAC algorithm"));
        }
        (ClientAuthMethod::PrivateKeyJwt | ClientAuthMethod::ClientSecretJwt, _) | (_, None) => {}
        (_, Some(_)) => {
            return Err(invalid("token_endpoint_auth_signing_alg", "only for private_key_jwt and client_secret_jwt"));
        }
    }

    // Registration 2: jwks and jwks_uri are exclusive.
    let jwks = doc.0.get("jwks").filter(|v| !v.is_null()).map(check_jwks).transpose()?;
    let jwks_uri = doc.string("jwks_uri")?.map(|u| https_url("jwks_uri", u).map(|_| u.to_owned())).transpose()?;
    if jwks.is_some() && jwks_uri.is_some() {
        return Err(invalid("jwks", "give jwks or jwks_uri, not both"));
    }
    let has_keys = jwks.is_some() || jwks_uri.is_some();
    if auth_method == ClientAuthMethod::PrivateKeyJwt && !has_keys {
        return Err(invalid("token_endpoint_auth_method", "private_key_jwt needs jwks or jwks_uri"));
    }

    let id_token_encryption = doc.encryption("id_token_encrypted_response_alg", "id_token_encrypted_response_enc")?;
    let userinfo_encryption = doc.encryption("userinfo_encrypted_response_alg", "userinfo_encrypted_response_enc")?;
    if (id_token_encryption.is_some() || userinfo_encryption.is_some()) && !has_keys {
        return Err(invalid("jwks", "encrypted responses need the client's keys (jwks or jwks_uri)"));
    }

    let subject_type = doc.parsed("subject_type")?.unwrap_or(SubjectType::Public);
    let sector_identifier_uri = doc
        .string("sector_identifier_uri")?
        .map(|u| https_url("sector_identifier_uri", u).map(|_| u.to_owned()))
        .transpose()?;
    let initiate_login_uri = doc
        .string("initiate_login_uri")?
        .map(|u| https_url("initiate_login_uri", u).map(|_| u.to_owned()))
        .transpose()?;
    let request_uris = doc
        .strings("request_uris")?
        .into_iter()
        .map(|u| https_url("request_uris", u).map(|_| u.to_owned()))
        .collect::<Result<_, _>>()?;
    let post_logout_redirect_uris = doc
        .strings("post_logout_redirect_uris")?
        .into_iter()
        .map(|u| u.parse().map_err(|e| invalid("post_logout_redirect_uris", format!("{u}: {e}"))))
        .collect::<Result<_, _>>()?;
    let scope = match doc.string("scope")? {
        Some(s) => ScopeSet::parse(s).map_err(|e| invalid("scope", e))?,
        None => ScopeSet::default(),
    };
    let contacts: Vec<String> = doc.strings("contacts")?.into_iter().map(str::to_owned).collect();
    if contacts.iter().any(|c| !c.contains('@')) {
        return Err(invalid("contacts", "must be email addresses"));
    }

    let text = |field: &str, value: &str| {
        if value.trim().is_empty() { Err(invalid(field, "must not be empty")) } else { Ok(()) }
    };
    let link = |field: &str, value: &str| {
        let url = url::Url::parse(value).map_err(|e| invalid(field, e))?;
        if matches!(url.scheme(), "https" | "http") { Ok(()) } else { Err(invalid(field, "must be an http(s) URL")) }
    };
    // Shown on the consent page as an image: https only, so the page stays secure.
    let logo = |field: &str, value: &str| {
        let url = url::Url::parse(value).map_err(|e| invalid(field, e))?;
        if url.scheme() == "https" { Ok(()) } else { Err(invalid(field, "must be an https URL")) }
    };
    let mut client_name = doc.localized("client_name", text)?;
    let name = client_name.remove("").unwrap_or_else(|| id.to_string());
    let presentation = ClientPresentation {
        client_name,
        logo_uri: doc.localized("logo_uri", logo)?,
        client_uri: doc.localized("client_uri", link)?,
        policy_uri: doc.localized("policy_uri", link)?,
        tos_uri: doc.localized("tos_uri", link)?,
    };

    let metadata = ClientMetadata {
        response_types,
        default_max_age: doc.seconds("default_max_age")?,
        subject_type,
        sector_identifier_uri,
        sector_identifier: None,
        jwks_uri,
        request_object_signing_alg: doc.parsed::<RequestObjectAlg>("request_object_signing_alg")?,
        request_uris,
        id_token_encryption,
        userinfo_signed_response_alg: doc.parsed("userinfo_signed_response_alg")?,
        userinfo_encryption,
        initiate_login_uri,
        scope,
        post_logout_redirect_uris,
        frontchannel_logout: logout_uri(&doc, "frontchannel_logout_uri", "frontchannel_logout_session_required")?,
        backchannel_logout: logout_uri(&doc, "backchannel_logout_uri", "backchannel_logout_session_required")?,
        application_type,
        contacts,
        presentation,
        token_endpoint_auth_signing_alg,
        require_auth_time: doc.bool("require_auth_time")?,
        default_acr_values: doc.strings("default_acr_values")?.into_iter().map(str::to_owned).collect(),
        request_object_encryption: doc.encryption("request_object_encryption_alg", "request_object_encryption_enc")?,
        software_id: doc.string("software_id")?.map(str::to_owned),
        software_version: doc.string("software_version")?.map(str::to_owned),
        origin: ClientOrigin::Operator,
        require_pushed_authorization_requests: doc.bool("require_pushed_authorization_requests")?,
        dpop_bound_access_tokens: doc.bool("dpop_bound_access_tokens")?,
        ciba: ciba_delivery(&doc, &grant_types, auth_method)?,
        required_acr: None,
    };
    Ok(Client {
        id,
        name,
        secret_hash: None,
        secret_for_jwt: None,
        redirect_uris,
        grant_types,
        auth_method,
        id_token_signed_response_alg: doc
            .parsed::<SigningAlg>("id_token_signed_response_alg")?
            .unwrap_or(SigningAlg::RS256),
        jwks,
        skip_consent: false,
        created_at: now,
        metadata,
    })
}

/// The client's metadata as registration answers with it: what was registered, defaults filled in
/// (RFC 7591 3.2.1; Registration 3.2), without credentials.
pub fn metadata_document(client: &Client) -> Map<String, Value> {
    let m = &client.metadata;
    let mut grant_types: Vec<&str> = client.grant_types.iter().map(|g| g.as_str()).collect();
    if m.response_types.iter().any(|r| r.is_front_channel_token()) {
        grant_types.push("implicit");
    }
    let mut doc = Map::new();
    let mut put = |name: &str, value: Value| {
        if !value.is_null() {
            doc.insert(name.to_owned(), value);
        }
    };
    put("client_id", json!(client.id.as_str()));
    put("client_id_issued_at", json!(client.created_at));
    put("client_name", json!(client.name));
    put("redirect_uris", json!(client.redirect_uris.iter().map(RedirectUri::as_str).collect::<Vec<_>>()));
    put("response_types", json!(m.response_types.iter().map(|r| r.as_str()).collect::<Vec<_>>()));
    put("grant_types", json!(grant_types));
    put("application_type", json!(m.application_type.as_str()));
    put("token_endpoint_auth_method", json!(client.auth_method.as_str()));
    put("token_endpoint_auth_signing_alg", json!(m.token_endpoint_auth_signing_alg.map(|a| a.as_str())));
    put("id_token_signed_response_alg", json!(client.id_token_signed_response_alg.as_str()));
    for (prefix, encryption) in [
        ("id_token_encrypted_response", m.id_token_encryption),
        ("userinfo_encrypted_response", m.userinfo_encryption),
        ("request_object_encryption", m.request_object_encryption),
    ] {
        if let Some(e) = encryption {
            put(&format!("{prefix}_alg"), json!(e.alg.as_str()));
            put(&format!("{prefix}_enc"), json!(e.enc.as_str()));
        }
    }
    put("userinfo_signed_response_alg", json!(m.userinfo_signed_response_alg.map(|a| a.as_str())));
    put("request_object_signing_alg", json!(m.request_object_signing_alg.map(|a| a.to_string())));
    put("subject_type", json!(m.subject_type.as_str()));
    put("sector_identifier_uri", json!(m.sector_identifier_uri));
    put("jwks_uri", json!(m.jwks_uri));
    put("jwks", client.jwks.as_deref().and_then(|j| serde_json::from_str(j).ok()).unwrap_or(Value::Null));
    put("default_max_age", json!(m.default_max_age));
    put("require_auth_time", json!(m.require_auth_time));
    if !m.default_acr_values.is_empty() {
        put("default_acr_values", json!(m.default_acr_values));
    }
    put("initiate_login_uri", json!(m.initiate_login_uri));
    if !m.request_uris.is_empty() {
        put("request_uris", json!(m.request_uris));
    }
    if !m.post_logout_redirect_uris.is_empty() {
        put(
            "post_logout_redirect_uris",
            json!(m.post_logout_redirect_uris.iter().map(RedirectUri::as_str).collect::<Vec<_>>()),
        );
    }
    for (prefix, logout) in
        [("frontchannel_logout", &m.frontchannel_logout), ("backchannel_logout", &m.backchannel_logout)]
    {
        if let Some(l) = logout {
            put(&format!("{prefix}_uri"), json!(l.uri.as_str()));
            put(&format!("{prefix}_session_required"), json!(l.session_required));
        }
    }
    if !m.scope.is_empty() {
        put("scope", json!(m.scope.to_string()));
    }
    if !m.contacts.is_empty() {
        put("contacts", json!(m.contacts));
    }
    let p = &m.presentation;
    for (field, values) in [
        ("client_name", &p.client_name),
        ("logo_uri", &p.logo_uri),
        ("client_uri", &p.client_uri),
        ("policy_uri", &p.policy_uri),
        ("tos_uri", &p.tos_uri),
    ] {
        for (tag, value) in values {
            let name = if tag.is_empty() { field.to_owned() } else { format!("{field}#{tag}") };
            put(&name, json!(value));
        }
    }
    put("require_pushed_authorization_requests", json!(m.require_pushed_authorization_requests));
    put("dpop_bound_access_tokens", json!(m.dpop_bound_access_tokens));
    match &m.ciba {
        Some(CibaDelivery::Poll) => put("backchannel_token_delivery_mode", json!("poll")),
        Some(CibaDelivery::Ping { notification_endpoint }) => {
            put("backchannel_token_delivery_mode", json!("ping"));
            put("backchannel_client_notification_endpoint", json!(notification_endpoint));
        }
        None => {}
    }
    put("software_id", json!(m.software_id));
    put("software_version", json!(m.software_version));
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(doc: Value) -> Result<Client, OAuthError> {
        client_from_metadata(doc.as_object().unwrap(), "c1".parse().unwrap(), 1000)
    }

    fn error(doc: Value) -> (ErrorCode, String) {
        let e = register(doc).unwrap_err();
        (e.code, e.description.into_owned())
    }

    #[test]
    fn defaults_follow_registration_2() {
        let c = register(json!({"redirect_uris": ["https://rp.example/cb"]})).unwrap();
        assert_eq!(c.metadata.response_types, vec![ResponseType::Code]);
        assert_eq!(c.grant_types, vec![GrantType::AuthorizationCode]);
        assert_eq!(c.auth_method, ClientAuthMethod::ClientSecretBasic);
        assert_eq!(c.id_token_signed_response_alg, SigningAlg::RS256);
        assert_eq!(c.metadata.application_type, ApplicationType::Web);
        assert_eq!(c.name, "c1", "no client_name: the id");
        let doc = metadata_document(&c);
        assert_eq!(doc["grant_types"], json!(["authorization_code"]));
        assert_eq!(doc["token_endpoint_auth_method"], "client_secret_basic");
    }

    #[test]
    fn response_types_need_their_grants() {
        let hybrid = json!({"redirect_uris": ["https://rp.example/cb"], "response_types": ["code id_token"]});
        let (code, description) = error(hybrid.clone());
        assert_eq!(code, ErrorCode::InvalidClientMetadata);
        assert!(description.starts_with("grant_types:"), "{description}");
        let mut ok = hybrid;
        ok["grant_types"] = json!(["authorization_code", "implicit"]);
        let c = register(ok).unwrap();
        assert_eq!(metadata_document(&c)["grant_types"], json!(["authorization_code", "implicit"]));
        let implicit_only = json!({"redirect_uris": ["https://rp.example/cb"], "response_types": ["code"], "grant_types": ["implicit"]});
        assert_eq!(error(implicit_only).0, ErrorCode::InvalidClientMetadata);
    }

    #[test]
    fn redirect_uris_follow_the_application_type() {
        let web = |uri: &str, response_type: &str| json!({"redirect_uris": [uri], "response_types": [response_type], "grant_types": ["authorization_code", "implicit"]});
        assert!(register(web("https://rp.example/cb", "id_token")).is_ok());
        assert!(register(web("http://127.0.0.1:8080/cb", "code")).is_ok(), "loopback http for development");
        // Registration 2: implicit web clients use https and not localhost.
        assert_eq!(error(web("http://127.0.0.1/cb", "id_token")).0, ErrorCode::InvalidRedirectUri);
        assert_eq!(error(web("https://localhost/cb", "id_token token")).0, ErrorCode::InvalidRedirectUri);
        assert_eq!(error(web("http://rp.example/cb", "code")).0, ErrorCode::InvalidRedirectUri);
        assert_eq!(error(web("com.example.app:/cb", "code")).0, ErrorCode::InvalidRedirectUri);
        assert_eq!(error(web("https://rp.example/cb#frag", "code")).0, ErrorCode::InvalidRedirectUri);
        // Native (RFC 8252 7.1, 7.3): private-use schemes and http loopback; not https web pages.
        let native = |uri: &str| json!({"application_type": "native", "redirect_uris": [uri], "token_endpoint_auth_method": "none"});
        assert!(register(native("com.example.app:/oauth2redirect")).is_ok());
        assert!(register(native("http://127.0.0.1/cb")).is_ok());
        assert!(register(native("http://[::1]/cb")).is_ok());
        assert_eq!(error(native("https://rp.example/cb")).0, ErrorCode::InvalidRedirectUri);
        assert_eq!(error(native("myapp:/cb")).0, ErrorCode::InvalidRedirectUri, "not a reverse domain name");
        assert_eq!(error(json!({})).0, ErrorCode::InvalidRedirectUri, "the code flow needs one");
    }

    #[test]
    fn every_bad_field_is_named() {
        let base = || json!({"redirect_uris": ["https://rp.example/cb"]});
        let cases = [
            ("redirect_uris", json!("https://rp.example/cb")),
            ("response_types", json!(["code", "nonsense"])),
            ("grant_types", json!(["password"])),
            ("application_type", json!("desktop")),
            ("token_endpoint_auth_method", json!("tls_client_auth")),
            ("id_token_signed_response_alg", json!("none")),
            ("id_token_encrypted_response_enc", json!("A128GCM")),
            ("userinfo_signed_response_alg", json!("HS1")),
            ("subject_type", json!("secret")),
            ("sector_identifier_uri", json!("http://rp.example/sector")),
            ("jwks_uri", json!("ftp://rp.example/jwks")),
            ("jwks", json!({"keys": [{"kty": "RSA", "n": "x", "e": "AQAB", "d": "secret"}]})),
            ("default_max_age", json!(-5)),
            ("require_auth_time", json!("yes")),
            ("initiate_login_uri", json!("http://rp.example/login")),
            ("request_uris", json!(["http://rp.example/r"])),
            ("post_logout_redirect_uris", json!(["not a uri"])),
            ("frontchannel_logout_uri", json!("http://rp.example/fc")),
            ("backchannel_logout_session_required", json!(true)),
            ("logo_uri", json!("http://rp.example/logo.png")),
            ("policy_uri", json!("javascript:alert(1)")),
            ("client_name", json!(42)),
            ("contacts", json!(["not an address"])),
            ("scope", json!("openid\u{7f}")),
            ("token_endpoint_auth_signing_alg", json!("RS256")),
        ];
        for (field, value) in cases {
            let mut doc = base();
            doc[field] = value;
            let (code, description) = error(doc);
            assert_eq!(code, ErrorCode::InvalidClientMetadata, "{field}: {description}");
            let named = description.starts_with(field)
                || (field == "backchannel_logout_session_required" && description.contains(field));
            assert!(
                named || field == "id_token_encrypted_response_enc" && description.contains(field),
                "{field}: {description}"
            );
        }
        let mut both = base();
        both["jwks_uri"] = json!("https://rp.example/jwks");
        both["jwks"] = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}]});
        assert!(error(both).1.contains("not both"));
    }

    #[test]
    fn language_tagged_values_are_kept_and_echoed() {
        let c = register(json!({
            "redirect_uris": ["https://rp.example/cb"],
            "client_name": "Shop",
            "client_name#de": "Laden",
            "logo_uri": "https://rp.example/logo.png",
            "tos_uri#de": "https://rp.example/agb",
            "unknown_field": {"ignored": true},
        }))
        .unwrap();
        assert_eq!(c.name, "Shop");
        assert_eq!(crate::model::localized(&c.metadata.presentation.client_name, &["de"]), Some("Laden"));
        let doc = metadata_document(&c);
        assert_eq!(doc["client_name#de"], "Laden");
        assert_eq!(doc["tos_uri#de"], "https://rp.example/agb");
        assert!(doc.get("unknown_field").is_none());
    }
}
