//! OAuth 2.0 / OpenID Connect error codes, in one place.

use std::borrow::Cow;
use std::fmt;

/// Error codes from RFC 6749 4.1.2.1 and 5.2, Core 3.1.2.6, and RFC 6750 3.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    UnauthorizedClient,
    AccessDenied,
    UnsupportedResponseType,
    InvalidScope,
    ServerError,
    TemporarilyUnavailable,
    InteractionRequired,
    LoginRequired,
    ConsentRequired,
    InvalidRequestObject,
    InvalidRequestUri,
    RegistrationNotSupported,
    InvalidClient,
    InvalidGrant,
    UnsupportedGrantType,
    InvalidToken,
    InsufficientScope,
    /// OpenID Connect Core Unmet Authentication Requirements 1.0: the essential `acr` cannot be met.
    UnmetAuthenticationRequirements,
    /// RFC 7591 3.2.2: registration errors.
    InvalidRedirectUri,
    InvalidClientMetadata,
    InvalidSoftwareStatement,
    UnapprovedSoftwareStatement,
    /// RFC 9449 7.1, 8: a DPoP proof that does not hold, or one without the server's nonce.
    InvalidDpopProof,
    UseDpopNonce,
    /// RFC 8628 3.5: a device's poll while the user has not decided, too fast, or too late.
    AuthorizationPending,
    SlowDown,
    ExpiredToken,
    /// CIBA 13: the hint names no user; the binding message cannot be shown.
    UnknownUserId,
    InvalidBindingMessage,
    /// RFC 8707 2: the resource is unknown or not allowed.
    InvalidTarget,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::InteractionRequired => "interaction_required",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::InvalidRequestObject => "invalid_request_object",
            Self::InvalidRequestUri => "invalid_request_uri",
            Self::RegistrationNotSupported => "registration_not_supported",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::UnmetAuthenticationRequirements => "unmet_authentication_requirements",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidSoftwareStatement => "invalid_software_statement",
            Self::UnapprovedSoftwareStatement => "unapproved_software_statement",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
            Self::UnknownUserId => "unknown_user_id",
            Self::InvalidBindingMessage => "invalid_binding_message",
            Self::InvalidTarget => "invalid_target",
        }
    }
}

/// An error as the protocol reports it: a code and a human-readable description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self { code, description: description.into() }
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    pub fn server_error() -> Self {
        Self::new(ErrorCode::ServerError, "the server could not complete the request")
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}
