//! OpenID Provider metadata (Discovery 1.0 3, 4) and the JWKS: both served pre-serialized.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use bytes::Bytes;
use serde_json::json;

use super::SharedState;
use crate::config::{Config, RegistrationPolicy};
use crate::jose::encryption;
use crate::model::{ClientAuthMethod, Display, GrantType, Prompt, ResponseMode, ResponseType, SigningAlg, SubjectType};
use crate::protocol::claims::ScopeClaims;

/// The metadata document: it advertises only what is implemented.
pub fn document(config: &Config, scopes: &ScopeClaims, ui_locales: &[String]) -> Bytes {
    let id_token_claims =
        ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "at_hash", "c_hash", "sid"];
    let claims: Vec<&str> = id_token_claims.into_iter().chain(scopes.claims()).collect();
    let iss = &config.issuer;
    let algs: Vec<&str> = SigningAlg::ALL.iter().map(|a| a.as_str()).collect();
    let request_object_algs: Vec<&str> = ["none"].into_iter().chain(algs.iter().copied()).collect();
    let auth_methods: Vec<&str> = ClientAuthMethod::ALL.iter().map(|m| m.as_str()).collect();
    let mut doc = json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "userinfo_endpoint": format!("{iss}/userinfo"),
        "jwks_uri": format!("{iss}/jwks.json"),
        "scopes_supported": scopes.scopes(),
        "response_types_supported": ResponseType::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "response_modes_supported": ResponseMode::ALL.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        // `implicit` names the tokens the authorization endpoint returns (Discovery 3); it has no token
        // endpoint grant of its own.
        "grant_types_supported": GrantType::ALL.iter().map(|g| g.as_str()).chain(["implicit"]).collect::<Vec<_>>(),
        "subject_types_supported": SubjectType::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "id_token_signing_alg_values_supported": algs,
        "token_endpoint_auth_methods_supported": auth_methods,
        // RFC 8414 2: revocation (RFC 7009) and introspection (RFC 7662) authenticate clients as the token
        // endpoint does; introspection refuses public clients.
        "revocation_endpoint": format!("{iss}/revoke"),
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint": format!("{iss}/introspect"),
        "introspection_endpoint_auth_methods_supported": auth_methods.iter().filter(|m| **m != "none").collect::<Vec<_>>(),
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA", "HS256", "HS384", "HS512"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": Prompt::ALL
            .iter()
            .filter(|p| **p != Prompt::Create || config.self_registration)
            .map(|p| p.as_str())
            .collect::<Vec<_>>(),
        "display_values_supported": Display::ALL.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        "claims_supported": claims,
        "claim_types_supported": ["normal"],
        "acr_values_supported": acr_values_supported(config),
        "claims_parameter_supported": true,
        "request_parameter_supported": true,
        "request_uri_parameter_supported": true,
        "require_request_uri_registration": true,
        // `none` only for clients that registered it (Core 6.1).
        "request_object_signing_alg_values_supported": request_object_algs,
        "request_object_encryption_alg_values_supported": encryption::algorithms(),
        "request_object_encryption_enc_values_supported": encryption::content_encryptions(),
        "id_token_encryption_alg_values_supported": encryption::algorithms(),
        "id_token_encryption_enc_values_supported": encryption::content_encryptions(),
        "userinfo_signing_alg_values_supported": algs,
        "userinfo_encryption_alg_values_supported": encryption::algorithms(),
        "userinfo_encryption_enc_values_supported": encryption::content_encryptions(),
        "authorization_response_iss_parameter_supported": true,
        "ui_locales_supported": ui_locales,
    });
    // RP-Initiated Logout 2.1, Session Management 1.0 2.1, Front-Channel Logout 3, Back-Channel Logout 2.1
    // (set apart: one json! literal this long exceeds the macro's recursion limit).
    doc["end_session_endpoint"] = json!(format!("{iss}/logout"));
    doc["check_session_iframe"] = json!(format!("{iss}/session/check"));
    for flag in [
        "frontchannel_logout_supported",
        "frontchannel_logout_session_supported",
        "backchannel_logout_supported",
        "backchannel_logout_session_supported",
    ] {
        doc[flag] = json!(true);
    }
    // RFC 9701 7: introspection answers may be signed JWTs.
    doc["introspection_signing_alg_values_supported"] = json!(["RS256"]);
    // RFC 9449 5.1.
    doc["dpop_signing_alg_values_supported"] =
        json!(crate::jose::dpop::ALGORITHMS.iter().map(|a| a.as_str()).collect::<Vec<_>>());
    // CIBA 4.
    doc["backchannel_authentication_endpoint"] = json!(format!("{iss}/bc-authorize"));
    doc["backchannel_token_delivery_modes_supported"] = json!(["poll", "ping"]);
    doc["backchannel_user_code_parameter_supported"] = json!(false);
    // RFC 8628 4.
    doc["device_authorization_endpoint"] = json!(format!("{iss}/device_authorization"));
    // RFC 9126 5.
    doc["pushed_authorization_request_endpoint"] = json!(format!("{iss}/par"));
    doc["require_pushed_authorization_requests"] = json!(config.require_pushed_authorization_requests);
    // Registration 1.0 3, RFC 8414 2.
    if config.registration != RegistrationPolicy::Off {
        doc["registration_endpoint"] = json!(format!("{iss}/register"));
    }
    serde_json::to_vec(&doc).expect("metadata serializes").into()
}

pub async fn configuration(State(state): State<SharedState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "public, max-age=300")],
        state.discovery_json.clone(),
    )
}

pub async fn jwks(State(state): State<SharedState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/jwk-set+json"), (header::CACHE_CONTROL, "public, max-age=300")],
        state.keys.get().jwks_json(),
    )
}

/// The `acr` levels sign-ins here reach: the phishing-resistant one only where passkeys work.
fn acr_values_supported(config: &Config) -> Vec<&str> {
    let mut levels = vec![config.password_acr.as_str(), config.mfa_acr.as_str()];
    if crate::passkeys::Passkeys::from_config(config).is_ok_and(|p| p.is_some()) {
        levels.push(&config.phishing_resistant_acr);
    }
    levels
}
