//! The authorization endpoint's rules (Core 3.1.2): validating a request, and deciding what the user
//! must do next. Pure functions: the HTTP layer looks up the client and session and renders the result.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::claims::ScopeClaims;
use super::error::{ErrorCode, OAuthError};
use super::params::Params;
use super::pkce;
use crate::model::{
    ApplicationType, ClaimsRequest, Client, ClientId, Consent, Display, GrantType, Prompt, RedirectUri, ResponseMode,
    ResponseType, ScopeSet, Timestamp,
};

/// A validated authorization request: everything later steps need, and nothing unchecked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: ClientId,
    pub redirect_uri: RedirectUri,
    #[serde(default)]
    pub response_type: ResponseType,
    #[serde(default)]
    pub response_mode: ResponseMode,
    pub scope: ScopeSet,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// S256 `code_challenge` (RFC 7636); the only method accepted.
    pub code_challenge: Option<String>,
    pub prompt: Vec<Prompt>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub ui_locales: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<Display>,
    /// The `sub` of a valid `id_token_hint`, or the one the `claims` parameter asks for (Core 5.5.1).
    pub hinted_subject: Option<String>,
    /// The `claims` parameter (Core 5.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimsRequest>,
    /// RFC 9449 10 `dpop_jkt`: the code will be redeemed only with a proof of this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// RFC 8707: the resources the tokens are for (checked against the registered ones by the caller).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Whether the request asks for a second factor (`acr_values`, an essential `acr`, the client's
    /// `default_acr_values`).
    #[serde(default)]
    pub second_factor: SecondFactor,
    /// The second factor asked for must be a passkey (the phishing-resistant `acr`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub phishing_resistant: bool,
}

/// How much a request wants the second factor's `acr` (Core 3.1.2.1, 5.5.1.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecondFactor {
    #[default]
    NotAsked,
    /// Voluntary (`acr_values`, `default_acr_values`): asked for when the user has one.
    Wanted,
    /// An essential `acr` only it meets, the client's required `acr`, or the OP's policy: a user without
    /// one sets one up at this sign-in when `enrol`, else `unmet_authentication_requirements`.
    Required { enrol: bool },
}

impl AuthorizationRequest {
    pub fn has_prompt(&self, p: Prompt) -> bool {
        self.prompt.contains(&p)
    }

    /// Claims the `claims` parameter asks for beyond what the requested scopes release: each needs the
    /// user's consent of its own.
    pub fn claims_beyond_scope(&self, scopes: &ScopeClaims) -> BTreeSet<String> {
        let Some(claims) = &self.claims else { return BTreeSet::new() };
        let by_scope: BTreeSet<&str> = scopes.claims_for(&self.scope).collect();
        claims.user_claims().into_iter().filter(|c| !by_scope.contains(c)).map(str::to_owned).collect()
    }

    /// Whether remembered consent covers everything this request asks for.
    pub fn is_covered_by(&self, consent: &Consent, scopes: &ScopeClaims) -> bool {
        self.scope.is_subset(&consent.scope) && self.claims_beyond_scope(scopes).is_subset(&consent.claims)
    }

    /// Core 11: `offline_access` is honoured only with `prompt=consent`, or where offline access was
    /// already allowed (remembered consent) or the client is trusted to skip consent; otherwise it is
    /// ignored.
    pub fn settle_offline_access(&mut self, remembered: Option<&Consent>, client: &Client) {
        let allowed = self.has_prompt(Prompt::Consent)
            || client.skip_consent
            || remembered.is_some_and(|c| c.scope.contains("offline_access"));
        if !allowed {
            self.scope = std::mem::take(&mut self.scope).without("offline_access");
        }
    }

    /// The consent to remember once the user allows this request: what was allowed before, and this.
    pub fn widen(&self, consent: Option<Consent>, scopes: &ScopeClaims) -> Consent {
        let mut consent = consent.unwrap_or_default();
        consent.scope = consent.scope.union(&self.scope);
        consent.claims.extend(self.claims_beyond_scope(scopes));
        consent
    }

    /// The error response for this request, sent to its redirect_uri.
    pub fn error(&self, error: OAuthError) -> ErrorRedirect {
        ErrorRedirect {
            redirect_uri: self.redirect_uri.clone(),
            response_mode: self.response_mode,
            state: self.state.clone(),
            error,
        }
    }
}

/// An error to send back to the client at its (validated) redirect_uri (RFC 6749 4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRedirect {
    pub redirect_uri: RedirectUri,
    pub response_mode: ResponseMode,
    pub state: Option<String>,
    pub error: OAuthError,
}

/// How a rejected request is answered (Core 3.1.2.6, RFC 6749 4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The client_id names no registered client: tell the person, in words for them, never redirect.
    UnknownClient,
    /// The client or redirect_uri is missing, malformed or unregistered: tell the user, never redirect
    /// (that would make the OP an open redirector).
    Page(OAuthError),
    Redirect(ErrorRedirect),
}

/// Server policy that shapes validation.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub require_pkce_for_all_clients: bool,
    pub scopes: &'a ScopeClaims,
    /// Self-service sign-up is offered (`prompt=create`).
    pub self_registration: bool,
    /// The `acr` a password login achieves (Core 2).
    pub acr: &'a str,
    /// The `acr` of a login with a second factor.
    pub mfa_acr: &'a str,
    /// The `acr` of a login with a passkey; none where passkeys are off.
    pub phishing_resistant_acr: Option<&'a str>,
    /// Every sign-in needs a second factor.
    pub second_factor_required: bool,
    /// Every sign-in needs a passkey (the phishing-resistant level).
    pub passkey_required: bool,
    /// Users without a second factor may set one up when a sign-in needs it.
    pub second_factor_enrolment: bool,
}

/// The longest values kept with a pending request: room for every real use (JWT-shaped `state`,
/// an email address as `login_hint`, a few language tags), and a pending request stays a few KiB.
const STORED_PARAMETER_LIMITS: [(&str, usize); 5] =
    [("state", 2048), ("nonce", 512), ("login_hint", 256), ("ui_locales", 256), ("claims_locales", 256)];

/// Finds the `client_id` of a request, for the caller to look up.
pub fn client_id(params: &Params) -> Result<ClientId, Rejection> {
    let raw =
        params.get("client_id").ok_or_else(|| Rejection::Page(OAuthError::invalid_request("client_id is missing")))?;
    raw.parse().map_err(|_| Rejection::Page(OAuthError::invalid_request("client_id is malformed")))
}

/// Where a request's errors go (Core 3.1.2.6): its registered redirect_uri, in its response mode,
/// with its state. Finding it is the first step of validation; a request without one gets a page.
struct Destination {
    redirect_uri: RedirectUri,
    response_mode: ResponseMode,
    state: Option<String>,
    /// A response_mode that cannot be used, reported (in the default mode) before anything else.
    mode_error: Option<&'static str>,
}

/// The registered redirect URI `requested` names: an exact match (RFC 9700 2.1), or for a native client
/// a loopback IP one on another port (RFC 8252 7.3: the app listens on whatever port is free), which
/// is then the one to use.
pub fn registered_redirect_uri(client: &Client, requested: &str) -> Option<RedirectUri> {
    if let Some(exact) = client.redirect_uris.iter().find(|r| r.as_str() == requested) {
        return Some(exact.clone());
    }
    if client.metadata.application_type != ApplicationType::Native {
        return None;
    }
    let mut wanted = url::Url::parse(requested).ok()?;
    let loopback_ip = matches!(wanted.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
        || matches!(wanted.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback());
    if wanted.scheme() != "http" || !loopback_ip {
        return None;
    }
    wanted.set_port(None).ok()?;
    let same_but_port = |registered: &RedirectUri| {
        url::Url::parse(registered.as_str()).is_ok_and(|mut r| r.set_port(None).is_ok() && r == wanted)
    };
    client.redirect_uris.iter().any(same_but_port).then(|| requested.parse().ok()).flatten()
}

impl Destination {
    fn find<'c>(params: &Params, client: Option<&'c Client>) -> Result<(&'c Client, Self), Rejection> {
        let client = client.ok_or(Rejection::UnknownClient)?;
        // Core 3.1.2.1: redirect_uri is REQUIRED and must match a registered one exactly.
        let redirect_uri = params
            .get("redirect_uri")
            .ok_or_else(|| Rejection::Page(OAuthError::invalid_request("redirect_uri is missing")))?;
        let redirect_uri = registered_redirect_uri(client, redirect_uri).ok_or_else(|| {
            Rejection::Page(OAuthError::invalid_request("redirect_uri is not registered for this client"))
        })?;
        let raw_response_type = params.get("response_type").unwrap_or_default();
        let default_mode = match raw_response_type.parse::<ResponseType>() {
            Ok(rt) => rt.default_mode(),
            Err(_) => ResponseType::default_mode_for(raw_response_type),
        };
        // An unusable response_mode is itself reported in the default mode.
        let (response_mode, mode_error) = match params.get("response_mode").map(str::parse::<ResponseMode>) {
            None => (default_mode, None),
            Some(Err(_)) => (default_mode, Some("unsupported response_mode")),
            // Multiple Response Type Encoding Practices 2.1: tokens never go in a query.
            Some(Ok(ResponseMode::Query)) if default_mode == ResponseMode::Fragment => {
                (default_mode, Some("response_mode=query cannot be used with a response_type that returns tokens"))
            }
            Some(Ok(mode)) => (mode, None),
        };
        let state = params.get("state").map(str::to_owned);
        Ok((client, Self { redirect_uri, response_mode, state, mode_error }))
    }

    fn reject(&self, error: OAuthError) -> Rejection {
        Rejection::Redirect(ErrorRedirect {
            redirect_uri: self.redirect_uri.clone(),
            response_mode: self.response_mode,
            state: self.state.clone(),
            error,
        })
    }
}

/// Reports `error` about the request in `params` as Core 3.1.2.6 requires: at its redirect_uri when
/// the client and redirect_uri check out, on a page otherwise.
pub fn reject(params: &Params, client: Option<&Client>, error: OAuthError) -> Rejection {
    match Destination::find(params, client) {
        Ok((_, destination)) => destination.reject(error),
        // No trustworthy redirect outside (RFC 9101 6.1, 6.2: a request object that fails may carry the
        // only redirect_uri): the error itself, on a page.
        Err(_) => Rejection::Page(error),
    }
}

/// Validates an authorization request for `client` (None if the client_id is unknown), with any
/// request object already merged in. `verify_hint` returns the subject of a valid `id_token_hint`
/// issued by this OP.
pub fn validate(
    params: &Params,
    client: Option<&Client>,
    policy: Policy<'_>,
    verify_hint: impl FnOnce(&str) -> Option<String>,
) -> Result<AuthorizationRequest, Rejection> {
    let (client, destination) = Destination::find(params, client)?;
    let fail = |code: ErrorCode, description: &'static str| destination.reject(OAuthError::new(code, description));
    if let Some(description) = destination.mode_error {
        return Err(fail(ErrorCode::InvalidRequest, description));
    }
    let Destination { redirect_uri, response_mode, state, .. } = &destination;
    let (redirect_uri, response_mode, state) = (redirect_uri.clone(), *response_mode, state.clone());
    let response_type = params.get("response_type").map(str::parse::<ResponseType>);

    // Core 7.2.1 self-issued registration is not offered.
    if params.contains("registration") {
        return Err(fail(ErrorCode::RegistrationNotSupported, "registration parameter is not supported"));
    }

    let response_type = match response_type {
        None => return Err(fail(ErrorCode::InvalidRequest, "response_type is missing")),
        Some(Err(_)) => return Err(fail(ErrorCode::UnsupportedResponseType, "unsupported response_type")),
        Some(Ok(rt)) => rt,
    };
    // RFC 6749 4.1.2.1 / Registration 2: each client uses only its registered response types.
    if !client.allows_response_type(response_type) {
        return Err(fail(ErrorCode::UnauthorizedClient, "client may not use this response_type"));
    }
    if response_type.has_code() && !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(fail(ErrorCode::UnauthorizedClient, "client may not use the authorization code flow"));
    }

    // Core 3.1.2.1: `openid` must be present; values the OP does not understand are ignored.
    let scope = params.get("scope").unwrap_or_default();
    let scope = ScopeSet::parse(scope).map_err(|_| fail(ErrorCode::InvalidScope, "scope is malformed"))?;
    if !scope.contains("openid") {
        return Err(fail(ErrorCode::InvalidScope, "the openid scope is required"));
    }
    let mut scope = scope.retain(|s| policy.scopes.is_known(s));
    // Core 11: offline access means a refresh token, so it needs a code and a client that may refresh.
    if !response_type.has_code() || !client.allows_grant(GrantType::RefreshToken) {
        scope = scope.without("offline_access");
    }

    // What is kept while the user signs in is bounded (a pending request must stay small).
    for (name, max) in STORED_PARAMETER_LIMITS {
        if params.get(name).is_some_and(|v| v.len() > max) {
            return Err(destination.reject(OAuthError::invalid_request(format!("{name} is too long"))));
        }
    }
    let nonce = params.get("nonce").map(str::to_owned);
    // Core 3.2.2.1, 3.3.2.11: an ID Token from the authorization endpoint must carry a nonce.
    if response_type.has_id_token() && nonce.is_none() {
        return Err(fail(ErrorCode::InvalidRequest, "nonce is required when the ID Token comes from this endpoint"));
    }

    // RFC 7636 4.3, RFC 9700 2.1.1: S256 only; required for public clients.
    let code_challenge = params.get("code_challenge");
    match params.get("code_challenge_method") {
        Some("S256") => {}
        Some(_) => return Err(fail(ErrorCode::InvalidRequest, "code_challenge_method must be S256")),
        None if code_challenge.is_some() => {
            // RFC 7636 4.3: an absent method means `plain`, which oxid does not accept.
            return Err(fail(ErrorCode::InvalidRequest, "code_challenge_method must be S256"));
        }
        None => {}
    }
    let code_challenge = match code_challenge {
        // PKCE binds a code; without one there is nothing to bind.
        _ if !response_type.has_code() => None,
        Some(c) if pkce::is_valid_s256_challenge(c) => Some(c.to_owned()),
        Some(_) => return Err(fail(ErrorCode::InvalidRequest, "code_challenge is malformed")),
        None if client.is_public() || policy.require_pkce_for_all_clients => {
            return Err(fail(ErrorCode::InvalidRequest, "PKCE code_challenge is required for this client"));
        }
        None => None,
    };
    // RFC 8707 2: absolute URIs without a fragment.
    let mut resources: Vec<String> = Vec::new();
    for resource in params.resources() {
        if !is_resource_indicator(resource) {
            return Err(fail(ErrorCode::InvalidTarget, "resource must be an absolute URI without a fragment"));
        }
        if !resources.iter().any(|r| r == resource) {
            resources.push(resource.to_owned());
        }
    }
    // RFC 9449 10: a JWK SHA-256 thumbprint, base64url (43 characters).
    let dpop_jkt = match params.get("dpop_jkt") {
        Some(jkt) if response_type.has_code() && crate::crypto::is_token_shaped(jkt) => Some(jkt.to_owned()),
        Some(_) if response_type.has_code() => return Err(fail(ErrorCode::InvalidRequest, "dpop_jkt is malformed")),
        _ => None,
    };

    let mut prompt = Vec::new();
    for value in params.get("prompt").unwrap_or_default().split(' ').filter(|v| !v.is_empty()) {
        let p: Prompt = value.parse().map_err(|_| fail(ErrorCode::InvalidRequest, "unsupported prompt value"))?;
        if !prompt.contains(&p) {
            prompt.push(p);
        }
    }
    // Core 3.1.2.1: none must not be combined with any other value.
    if prompt.contains(&Prompt::None) && prompt.len() > 1 {
        return Err(fail(ErrorCode::InvalidRequest, "prompt=none cannot be combined with other values"));
    }
    // Initiating User Registration 4.1: a prompt value the OP does not offer is invalid_request.
    if prompt.contains(&Prompt::Create) && !policy.self_registration {
        return Err(fail(ErrorCode::InvalidRequest, "prompt=create is not supported: sign-up is turned off"));
    }

    let max_age = match params.get("max_age") {
        // Registration 2: the client's default_max_age applies when the request names none.
        None => client.metadata.default_max_age.map(i64::from),
        Some(v) => Some(
            v.parse::<u32>()
                .map(i64::from)
                .map_err(|_| fail(ErrorCode::InvalidRequest, "max_age must be a non-negative integer"))?,
        ),
    };

    let display = match params.get("display") {
        None => None,
        Some(d) => {
            Some(d.parse::<Display>().map_err(|_| fail(ErrorCode::InvalidRequest, "unsupported display value"))?)
        }
    };

    let hinted_subject = match params.get("id_token_hint") {
        None => None,
        Some(hint) => Some(
            verify_hint(hint)
                .ok_or_else(|| fail(ErrorCode::InvalidRequest, "id_token_hint is not an ID Token issued by this OP"))?,
        ),
    };

    let mut claims = match params.get("claims") {
        None => None,
        Some(json) => Some(ClaimsRequest::parse(json).map_err(|e| fail(ErrorCode::InvalidRequest, e))?),
    };
    if let Some(locales) = params.get("claims_locales") {
        let locales: Vec<String> =
            locales.split(' ').filter(|t| !t.is_empty()).map(str::to_lowercase).take(8).collect();
        claims.get_or_insert_with(ClaimsRequest::default).locales = locales;
    }
    // The first `acr_values` (or the client's `default_acr_values`) is the preferred level.
    let preferred = params.get("acr_values").and_then(|v| v.split(' ').next()).map(str::to_owned);
    let preferred = preferred.or_else(|| client.metadata.default_acr_values.first().cloned());
    let required = SecondFactor::Required { enrol: policy.second_factor_enrolment };
    let phishing_resistant_acr = policy.phishing_resistant_acr;
    let is_phishing_resistant = |acr: Option<&str>| acr.is_some() && acr == phishing_resistant_acr;
    let required_acr = client.metadata.required_acr.as_deref();
    let mut phishing_resistant = false;
    let mut second_factor =
        if (policy.passkey_required && phishing_resistant_acr.is_some()) || is_phishing_resistant(required_acr) {
            phishing_resistant = true;
            required
        } else if policy.second_factor_required || required_acr == Some(policy.mfa_acr) {
            required
        } else if preferred.as_deref() == Some(policy.mfa_acr) {
            SecondFactor::Wanted
        } else if is_phishing_resistant(preferred.as_deref()) {
            phishing_resistant = true;
            SecondFactor::Wanted
        } else {
            SecondFactor::NotAsked
        };
    if let Some(acr) = claims.as_ref().and_then(|c| c.id_token.get("acr")) {
        // Core 5.5.1.1: an essential acr the OP cannot satisfy fails the authentication; one only a
        // second factor (or only a passkey) satisfies requires it.
        if acr.essential && !acr.accepts(&serde_json::Value::from(policy.acr)) {
            let accepts = |level: &str| acr.accepts(&serde_json::Value::from(level));
            if accepts(policy.mfa_acr) {
                // An essential request cannot be met by enrolling now: the user has no factor yet.
                second_factor = SecondFactor::Required { enrol: false };
            } else if phishing_resistant_acr.is_some_and(accepts) {
                second_factor = SecondFactor::Required { enrol: false };
                phishing_resistant = true;
            } else {
                return Err(fail(
                    ErrorCode::UnmetAuthenticationRequirements,
                    "none of the essential acr values can be satisfied",
                ));
            }
        }
    }
    let required_subject = claims.as_ref().and_then(|c| c.required_subject()).map(str::to_owned);
    let hinted_subject = match (hinted_subject, required_subject) {
        (Some(a), Some(b)) if a != b => {
            return Err(fail(ErrorCode::InvalidRequest, "id_token_hint and the claims parameter name different users"));
        }
        (a, b) => a.or(b),
    };

    Ok(AuthorizationRequest {
        client_id: client.id.clone(),
        redirect_uri,
        response_type,
        response_mode,
        scope,
        state,
        nonce,
        code_challenge,
        prompt,
        max_age,
        login_hint: params.get("login_hint").map(str::to_owned),
        ui_locales: params.get("ui_locales").map(str::to_owned),
        display,
        // `acr_values` is a voluntary request (Core 3.1.2.1, 5.5.1.1): the OP answers with the level it
        // reaches; the second factor's is asked for when preferred (`second_factor`).
        hinted_subject,
        claims,
        dpop_jkt,
        resources,
        second_factor,
        phishing_resistant,
    })
}

/// RFC 8707 2: a resource indicator is an absolute URI without a fragment.
pub fn is_resource_indicator(value: &str) -> bool {
    url::Url::parse(value).is_ok_and(|u| !u.cannot_be_a_base() && u.fragment().is_none())
}

/// The signed-in user, as far as the next-step decision is concerned.
#[derive(Debug, Clone, Copy)]
pub struct SignedIn<'a> {
    /// The user's `sub` as this client sees it (Core 8), to compare with `id_token_hint`.
    pub subject: &'a str,
    pub auth_time: Timestamp,
    /// The session was created by a login during this very flow.
    pub logged_in_during_flow: bool,
    /// The user chose this session's account on the account chooser during this very flow.
    pub chosen_during_flow: bool,
    /// The session's login included a second factor.
    pub with_second_factor: bool,
    /// The session's login included a passkey.
    pub with_passkey: bool,
    /// The user has a second factor to ask for (looked up only when the request wants one): any, or
    /// a passkey when the request asks for the phishing-resistant level.
    pub has_second_factor: bool,
}

/// What must happen before a code can be issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Login,
    /// The account chooser (`prompt=select_account`).
    SelectAccount,
    /// The second factor, within the session (step-up to the second factor's `acr`).
    SecondFactor,
    /// Setting up a second factor, which the sign-in needs and the user does not have yet.
    EnrolSecondFactor,
    /// Account creation (Initiating User Registration via OpenID Connect 1.0).
    SignUp,
    Consent,
    IssueCode,
}

/// Decides the next step (Core 3.1.2.3, 3.1.2.4). A login during this flow satisfies `prompt=login`
/// and `max_age`; a login or a choice of account during this flow satisfies `prompt=select_account`
/// (Core 3.1.2.1), which comes first, so the user can pick the account a hint or `prompt=login` is about. `consent_given` is whether remembered consent covers the request's scopes (or the
/// client is trusted to skip consent).
pub fn next_step(
    req: &AuthorizationRequest,
    session: Option<SignedIn<'_>>,
    consent_given: bool,
    now: Timestamp,
) -> Result<NextStep, OAuthError> {
    let must_login = match session {
        None => true,
        Some(s) => {
            // Whole seconds: ">=" makes max_age=0 always mean a fresh login.
            let too_old = req.max_age.is_some_and(|max| now - s.auth_time >= max);
            (!s.logged_in_during_flow && (req.has_prompt(Prompt::Login) || too_old))
                || req.hinted_subject.as_deref().is_some_and(|sub| sub != s.subject)
        }
    };
    let no_ui = req.has_prompt(Prompt::None);
    // prompt=create asks for account creation; an account made (and signed in) in this flow satisfies it.
    if req.has_prompt(Prompt::Create) && !session.is_some_and(|s| s.logged_in_during_flow) {
        return Ok(NextStep::SignUp);
    }
    // prompt=none cannot be combined with select_account (validated), so the chooser always may show.
    if req.has_prompt(Prompt::SelectAccount)
        && session.is_some_and(|s| !s.logged_in_during_flow && !s.chosen_during_flow)
    {
        return Ok(NextStep::SelectAccount);
    }
    if must_login {
        return if no_ui {
            Err(OAuthError::new(ErrorCode::LoginRequired, "the user must sign in"))
        } else {
            Ok(NextStep::Login)
        };
    }
    // Step-up (Core 3.1.2.1 acr_values, 5.5.1.1 essential acr): the second factor within the session.
    // With `phishing_resistant`, only a passkey meets the request (and `has_second_factor` is about passkeys).
    let reached = |s: &SignedIn<'_>| if req.phishing_resistant { s.with_passkey } else { s.with_second_factor };
    if let Some(s) = session.filter(|s| !reached(s) && req.second_factor != SecondFactor::NotAsked) {
        match (s.has_second_factor, req.second_factor, no_ui) {
            (true, _, true) => {
                return Err(OAuthError::new(ErrorCode::InteractionRequired, "the second factor is needed"));
            }
            (true, _, false) => return Ok(NextStep::SecondFactor),
            (false, SecondFactor::Required { enrol: true }, false) => return Ok(NextStep::EnrolSecondFactor),
            (false, SecondFactor::Required { .. }, _) => {
                return Err(OAuthError::new(
                    ErrorCode::UnmetAuthenticationRequirements,
                    "the user has no second factor for the required acr",
                ));
            }
            (false, _, _) => {}
        }
    }
    if !consent_given || req.has_prompt(Prompt::Consent) {
        return if no_ui {
            Err(OAuthError::new(ErrorCode::ConsentRequired, "the user must consent"))
        } else {
            Ok(NextStep::Consent)
        };
    }
    Ok(NextStep::IssueCode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ClientAuthMethod, SigningAlg};

    fn client(public: bool) -> Client {
        Client {
            id: "app".parse().unwrap(),
            name: "App".into(),
            secret_hash: None,
            secret_for_jwt: None,
            redirect_uris: vec!["https://rp.example/cb".parse().unwrap()],
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            auth_method: if public { ClientAuthMethod::None } else { ClientAuthMethod::ClientSecretBasic },
            id_token_signed_response_alg: SigningAlg::RS256,
            jwks: None,
            skip_consent: false,
            created_at: 0,
            metadata: Default::default(),
        }
    }

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn run(query: &str, public: bool) -> Result<AuthorizationRequest, Rejection> {
        let params = Params::parse(query.as_bytes()).unwrap();
        let scopes = ScopeClaims::new(&Default::default());
        validate(
            &params,
            Some(&client(public)),
            Policy {
                require_pkce_for_all_clients: false,
                scopes: &scopes,
                self_registration: true,
                acr: "urn:x",
                mfa_acr: "urn:x:mfa",
                phishing_resistant_acr: Some("urn:x:passkey"),
                second_factor_required: false,
                passkey_required: false,
                second_factor_enrolment: true,
            },
            |_| None,
        )
    }

    fn redirect_code(r: Result<AuthorizationRequest, Rejection>) -> ErrorCode {
        match r {
            Err(Rejection::Redirect(e)) => e.error.code,
            other => panic!("expected a redirect error, got {other:?}"),
        }
    }

    const BASE: &str = "client_id=app&redirect_uri=https%3A%2F%2Frp.example%2Fcb&response_type=code&state=s1";

    #[test]
    fn accepts_a_good_request() {
        let r = run(
            &format!(
                "{BASE}&scope=openid%20email%20bogus&nonce=n&code_challenge={CHALLENGE}&code_challenge_method=S256"
            ),
            true,
        )
        .unwrap();
        assert_eq!(r.scope.to_string(), "email openid", "unknown scopes are ignored (Core 3.1.2.1)");
        assert_eq!(r.state.as_deref(), Some("s1"));
    }

    #[test]
    fn unregistered_redirect_uri_is_never_redirected_to() {
        let r =
            run("client_id=app&redirect_uri=https%3A%2F%2Fevil.example%2Fcb&response_type=code&scope=openid", false);
        assert!(matches!(r, Err(Rejection::Page(_))));
        // Exact match only: a registered prefix is not enough (RFC 9700 4.1.3).
        let r =
            run("client_id=app&redirect_uri=https%3A%2F%2Frp.example%2Fcb%2Fx&response_type=code&scope=openid", false);
        assert!(matches!(r, Err(Rejection::Page(_))));
        let params = Params::parse(b"redirect_uri=https%3A%2F%2Frp.example%2Fcb").unwrap();
        let scopes = ScopeClaims::new(&Default::default());
        let r = validate(
            &params,
            None,
            Policy {
                require_pkce_for_all_clients: false,
                scopes: &scopes,
                self_registration: true,
                acr: "urn:x",
                mfa_acr: "urn:x:mfa",
                phishing_resistant_acr: Some("urn:x:passkey"),
                second_factor_required: false,
                passkey_required: false,
                second_factor_enrolment: true,
            },
            |_| None,
        );
        assert!(matches!(r, Err(Rejection::UnknownClient)));
    }

    #[test]
    fn other_errors_redirect_with_state() {
        let r = run("client_id=app&redirect_uri=https%3A%2F%2Frp.example%2Fcb&scope=openid&state=s1", false);
        match r {
            Err(Rejection::Redirect(e)) => {
                assert_eq!(e.error.code, ErrorCode::InvalidRequest);
                assert_eq!(e.state.as_deref(), Some("s1"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(redirect_code(run(&format!("{BASE}&scope=profile"), false)), ErrorCode::InvalidScope);
        assert_eq!(
            redirect_code(run(&BASE.replace("response_type=code", "response_type=token"), false)),
            ErrorCode::UnsupportedResponseType
        );
        assert_eq!(
            redirect_code(run(&format!("{BASE}&scope=openid&prompt=none%20login"), false)),
            ErrorCode::InvalidRequest
        );
        assert_eq!(redirect_code(run(&format!("{BASE}&scope=openid&max_age=-1"), false)), ErrorCode::InvalidRequest);
    }

    #[test]
    fn pkce_rules() {
        // Public clients must use PKCE (RFC 9700 2.1.1).
        assert_eq!(redirect_code(run(&format!("{BASE}&scope=openid"), true)), ErrorCode::InvalidRequest);
        // plain is refused, explicitly or by omission of the method (RFC 7636 4.3).
        let plain = format!("{BASE}&scope=openid&code_challenge={CHALLENGE}&code_challenge_method=plain");
        assert_eq!(redirect_code(run(&plain, true)), ErrorCode::InvalidRequest);
        let implicit_plain = format!("{BASE}&scope=openid&code_challenge={CHALLENGE}");
        assert_eq!(redirect_code(run(&implicit_plain, true)), ErrorCode::InvalidRequest);
        // Confidential clients may omit it by default.
        assert!(run(&format!("{BASE}&scope=openid"), false).is_ok());
    }

    fn request(prompt: Vec<Prompt>, max_age: Option<i64>) -> AuthorizationRequest {
        let mut r = run(&format!("{BASE}&scope=openid"), false).unwrap();
        r.prompt = prompt;
        r.max_age = max_age;
        r
    }

    #[test]
    fn next_step_follows_prompt_and_max_age() {
        let me = SignedIn {
            subject: "u1",
            auth_time: 1000,
            logged_in_during_flow: false,
            chosen_during_flow: false,
            with_second_factor: false,
            with_passkey: false,
            has_second_factor: false,
        };
        let fresh = Some(SignedIn { logged_in_during_flow: true, ..me });
        let me = Some(me);
        let r = request(vec![], None);
        assert_eq!(next_step(&r, None, false, 1000), Ok(NextStep::Login));
        assert_eq!(next_step(&r, me, false, 1000), Ok(NextStep::Consent));
        assert_eq!(next_step(&r, me, true, 1000), Ok(NextStep::IssueCode));

        let none = request(vec![Prompt::None], None);
        assert_eq!(next_step(&none, None, true, 1000).unwrap_err().code, ErrorCode::LoginRequired);
        assert_eq!(next_step(&none, me, false, 1000).unwrap_err().code, ErrorCode::ConsentRequired);

        // prompt=login: an existing session does not count; a login during this flow does.
        let login = request(vec![Prompt::Login], None);
        assert_eq!(next_step(&login, me, true, 1500), Ok(NextStep::Login));
        assert_eq!(next_step(&login, fresh, true, 1500), Ok(NextStep::IssueCode));

        // max_age (Core 3.1.2.1): older authentication means a new login.
        let aged = request(vec![], Some(60));
        assert_eq!(next_step(&aged, me, true, 2000), Ok(NextStep::Login));
        assert_eq!(next_step(&aged, me, true, 1030), Ok(NextStep::IssueCode));
        // max_age=0 after a login in this flow, even a second later, does not loop.
        let zero = request(vec![], Some(0));
        assert_eq!(next_step(&zero, me, true, 1001), Ok(NextStep::Login));
        assert_eq!(next_step(&zero, fresh, true, 1001), Ok(NextStep::IssueCode));

        let consent = request(vec![Prompt::Consent], None);
        assert_eq!(next_step(&consent, me, true, 1000), Ok(NextStep::Consent));

        let mut hinted = request(vec![Prompt::None], None);
        hinted.hinted_subject = Some("someone-else".into());
        assert_eq!(next_step(&hinted, me, true, 1000).unwrap_err().code, ErrorCode::LoginRequired);
    }

    #[test]
    fn the_phishing_resistant_acr_asks_for_a_passkey() {
        let base = format!("{BASE}&scope=openid&code_challenge={CHALLENGE}&code_challenge_method=S256");
        let wanted = run(&format!("{base}&acr_values=urn%3Ax%3Apasskey"), true).unwrap();
        assert_eq!((wanted.second_factor, wanted.phishing_resistant), (SecondFactor::Wanted, true));
        let essential = r#"{"id_token":{"acr":{"essential":true,"values":["urn:x:passkey"]}}}"#;
        let claims =
            format!("{base}&claims={}", url::form_urlencoded::byte_serialize(essential.as_bytes()).collect::<String>());
        let required = run(&claims, true).unwrap();
        assert_eq!(
            (required.second_factor, required.phishing_resistant),
            (SecondFactor::Required { enrol: false }, true),
            "a passkey cannot be set up during a sign-in"
        );
        let mfa = run(&format!("{base}&acr_values=urn%3Ax%3Amfa"), true).unwrap();
        assert!(!mfa.phishing_resistant);

        // A session with a password and a code is not enough; one with a passkey is.
        let coded = SignedIn {
            subject: "u1",
            auth_time: 1000,
            logged_in_during_flow: false,
            chosen_during_flow: false,
            with_second_factor: true,
            with_passkey: false,
            has_second_factor: true,
        };
        assert_eq!(next_step(&wanted, Some(coded), true, 1000), Ok(NextStep::SecondFactor));
        let with_passkey = SignedIn { with_passkey: true, ..coded };
        assert_eq!(next_step(&wanted, Some(with_passkey), true, 1000), Ok(NextStep::IssueCode));
        // A user without a passkey: the wish is answered with the level reached; the requirement is unmet.
        let no_passkey = SignedIn { has_second_factor: false, ..coded };
        assert_eq!(next_step(&wanted, Some(no_passkey), true, 1000), Ok(NextStep::IssueCode));
        let e = next_step(&required, Some(no_passkey), true, 1000).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnmetAuthenticationRequirements);
    }

    #[test]
    fn a_wanted_or_required_second_factor_steps_up_the_session() {
        let password_only = SignedIn {
            subject: "u1",
            auth_time: 1000,
            logged_in_during_flow: false,
            chosen_during_flow: false,
            with_second_factor: false,
            with_passkey: false,
            has_second_factor: true,
        };
        let mut wanted = request(vec![], None);
        wanted.second_factor = SecondFactor::Wanted;
        assert_eq!(next_step(&wanted, Some(password_only), true, 1000), Ok(NextStep::SecondFactor));
        let stepped_up = SignedIn { with_second_factor: true, ..password_only };
        assert_eq!(next_step(&wanted, Some(stepped_up), true, 1000), Ok(NextStep::IssueCode));
        // Without a factor to ask for: a voluntary wish is answered with the level reached; an essential
        // one is unmet (Core 5.5.1.1).
        let without = SignedIn { has_second_factor: false, ..password_only };
        assert_eq!(next_step(&wanted, Some(without), true, 1000), Ok(NextStep::IssueCode));
        let mut required = wanted.clone();
        required.second_factor = SecondFactor::Required { enrol: false };
        let e = next_step(&required, Some(without), true, 1000).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnmetAuthenticationRequirements);
        // Where enrolment is allowed, the user sets a factor up instead.
        let mut enrol = wanted.clone();
        enrol.second_factor = SecondFactor::Required { enrol: true };
        assert_eq!(next_step(&enrol, Some(without), true, 1000), Ok(NextStep::EnrolSecondFactor));
        // prompt=none cannot ask.
        let mut silent = wanted.clone();
        silent.prompt = vec![Prompt::None];
        assert_eq!(
            next_step(&silent, Some(password_only), true, 1000).unwrap_err().code,
            ErrorCode::InteractionRequired
        );
        // No session: the login asks for the factor itself.
        assert_eq!(next_step(&required, None, true, 1000), Ok(NextStep::Login));
    }

    #[test]
    fn native_loopback_redirect_uris_match_any_port() {
        let mut native = client(true);
        native.redirect_uris = vec!["http://127.0.0.1/cb".parse().unwrap(), "com.example.app:/cb".parse().unwrap()];
        native.metadata.application_type = ApplicationType::Native;
        // RFC 8252 7.3: any port on a loopback IP; the requested URI is the one used.
        let found = registered_redirect_uri(&native, "http://127.0.0.1:51004/cb").unwrap();
        assert_eq!(found.as_str(), "http://127.0.0.1:51004/cb");
        assert!(registered_redirect_uri(&native, "http://127.0.0.1:51004/other").is_none());
        assert!(registered_redirect_uri(&native, "http://localhost:51004/cb").is_none(), "IP literals only");
        assert!(registered_redirect_uri(&native, "com.example.app:/cb").is_some());
        // Web clients: exact matches only (RFC 9700 2.1).
        let mut web = native.clone();
        web.metadata.application_type = ApplicationType::Web;
        assert!(registered_redirect_uri(&web, "http://127.0.0.1:51004/cb").is_none());
    }

    #[test]
    fn select_account_shows_the_chooser_once_per_flow() {
        let me = SignedIn {
            subject: "u1",
            auth_time: 1000,
            logged_in_during_flow: false,
            chosen_during_flow: false,
            with_second_factor: false,
            with_passkey: false,
            has_second_factor: false,
        };
        let chosen = SignedIn { chosen_during_flow: true, ..me };
        let fresh = SignedIn { logged_in_during_flow: true, ..me };
        let select = request(vec![Prompt::SelectAccount], None);
        // Core 3.1.2.1: the user is asked to pick among their accounts; with none, they sign in.
        assert_eq!(next_step(&select, None, true, 1000), Ok(NextStep::Login));
        assert_eq!(next_step(&select, Some(me), true, 1000), Ok(NextStep::SelectAccount));
        assert_eq!(next_step(&select, Some(chosen), true, 1000), Ok(NextStep::IssueCode));
        assert_eq!(next_step(&select, Some(chosen), false, 1000), Ok(NextStep::Consent));
        // "Use another account" signs in during the flow: no second chooser.
        assert_eq!(next_step(&select, Some(fresh), true, 1000), Ok(NextStep::IssueCode));
        // A choice is not a login: prompt=login still asks for one after the chooser.
        let both = request(vec![Prompt::SelectAccount, Prompt::Login], None);
        assert_eq!(next_step(&both, Some(me), true, 1000), Ok(NextStep::SelectAccount));
        assert_eq!(next_step(&both, Some(chosen), true, 1000), Ok(NextStep::Login));
        // The hinted account chosen: on to the code; another one: a login.
        let mut hinted = request(vec![Prompt::SelectAccount], None);
        hinted.hinted_subject = Some("u1".into());
        assert_eq!(next_step(&hinted, Some(chosen), true, 1000), Ok(NextStep::IssueCode));
        hinted.hinted_subject = Some("u2".into());
        assert_eq!(next_step(&hinted, Some(chosen), true, 1000), Ok(NextStep::Login));
    }
}
