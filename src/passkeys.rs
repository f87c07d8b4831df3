//! Passkeys (WebAuthn Level 2/3) through webauthn-rs: the relying party, and each ceremony's options
//! (for the page's script) and checks. Between a ceremony's start and its end nothing is stored: its
//! state travels with the browser under a MAC (`http::passkeys`), and the challenge is spent once.

use serde_json::Value;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};
use webauthn_rs_proto::ResidentKeyRequirement;

use crate::config::{Config, ConfigError};
use crate::crypto;
use crate::model::{StoredPasskey, Timestamp, User};

/// Why a ceremony failed. The user is told to try again; the detail is for the log.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error("the browser's answer is not a WebAuthn credential: {0}")]
    Malformed(String),
    #[error("WebAuthn check failed: {0}")]
    Refused(String),
    #[error("no such passkey")]
    Unknown,
}

/// Options for the page's script (`PublicKeyCredential.parse…OptionsFromJSON`) and the state to
/// carry until the answer comes.
pub struct Ceremony {
    pub options: Value,
    pub state: String,
}

fn refused(e: impl std::fmt::Display) -> PasskeyError {
    PasskeyError::Refused(e.to_string())
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("WebAuthn state serializes")
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, PasskeyError> {
    serde_json::from_str(text).map_err(|e| PasskeyError::Malformed(e.to_string()))
}

/// The WebAuthn user handle of a user: derived from the user id (stable, reveals nothing). Passkeys
/// are found by credential id; the handle only has to match the passkey's owner.
pub fn user_handle(user_id: &str) -> Uuid {
    let digest = crypto::sha256(format!("oxid-webauthn-user:{user_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

/// The base64url credential id of a credential an authenticator returned.
pub fn credential_id(credential: &PublicKeyCredential) -> String {
    crypto::b64url(credential.get_credential_id())
}

pub struct Passkeys {
    webauthn: Webauthn,
}

impl Passkeys {
    /// The relying party: id `webauthn_rp_id`, or the issuer's host when that is a domain name
    /// (WebAuthn refuses IP addresses as RP ids: an issuer on `127.0.0.1` has no passkeys unless
    /// `webauthn_rp_id` names a domain such as `localhost`); origin the issuer's.
    pub fn from_config(config: &Config) -> Result<Option<Self>, ConfigError> {
        let issuer = Url::parse(&config.issuer).map_err(|e| ConfigError(format!("issuer: {e}")))?;
        let rp_id = match &config.webauthn_rp_id {
            Some(id) => id.clone(),
            None => match issuer.host() {
                Some(url::Host::Domain(host)) => host.to_owned(),
                _ => return Ok(None),
            },
        };
        let origin = Url::parse(&issuer.origin().ascii_serialization())
            .map_err(|e| ConfigError(format!("issuer origin: {e}")))?;
        let webauthn = WebauthnBuilder::new(&rp_id, &origin)
            .and_then(|b| b.rp_name(&rp_id).build())
            .map_err(|e| ConfigError(format!("webauthn_rp_id {rp_id:?} does not fit the issuer's origin: {e}")))?;
        Ok(Some(Self { webauthn }))
    }

    /// A new passkey for `user`, who has `existing` ones (the authenticator refuses to make a second
    /// one for the same account). Discoverable, so that it signs in without a username; user
    /// verification required.
    pub fn start_registration(&self, user: &User, existing: &[StoredPasskey]) -> Result<Ceremony, PasskeyError> {
        let exclude: Vec<_> =
            existing.iter().filter_map(|p| parse::<Passkey>(&p.credential).ok()).map(|p| p.cred_id().clone()).collect();
        let display = user.name.as_deref().unwrap_or(&user.username);
        let (mut options, state) = self
            .webauthn
            .start_passkey_registration(user_handle(&user.id), &user.username, display, Some(exclude))
            .map_err(refused)?;
        // webauthn-rs leaves resident keys to the authenticator; sign-in without a username needs one.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Required);
            selection.require_resident_key = true;
        }
        Ok(Ceremony { options: serde_json::to_value(&options.public_key).map_err(refused)?, state: json(&state) })
    }

    /// The passkey the browser's `answer` registers, if it answers the ceremony `state`.
    pub fn finish_registration(
        &self,
        answer: &str,
        state: &str,
        user_id: &str,
        name: &str,
        now: Timestamp,
    ) -> Result<StoredPasskey, PasskeyError> {
        let answer: RegisterPublicKeyCredential = parse(answer)?;
        let state: PasskeyRegistration = parse(state)?;
        let passkey = self.webauthn.finish_passkey_registration(&answer, &state).map_err(refused)?;
        Ok(StoredPasskey {
            credential_id: crypto::b64url(passkey.cred_id().as_ref()),
            user_id: user_id.to_owned(),
            name: name.to_owned(),
            credential: json(&passkey),
            created_at: now,
            last_used_at: None,
        })
    }

    /// Sign-in without a username: any of this site's passkeys the authenticator holds.
    pub fn start_sign_in(&self) -> Result<Ceremony, PasskeyError> {
        let (options, state) = self.webauthn.start_discoverable_authentication().map_err(refused)?;
        Ok(Ceremony { options: serde_json::to_value(&options.public_key).map_err(refused)?, state: json(&state) })
    }

    /// A sign-in `answer` and the credential id it names (to look the passkey up by).
    pub fn answer_credential(&self, answer: &str) -> Result<(PublicKeyCredential, String), PasskeyError> {
        let answer: PublicKeyCredential = parse(answer)?;
        let id = credential_id(&answer);
        Ok((answer, id))
    }

    /// Checks a sign-in `answer` against the ceremony `state` and the passkey it named; the passkey as
    /// it is after this use (its signature counter).
    pub fn finish_sign_in(
        &self,
        answer: &PublicKeyCredential,
        state: &str,
        stored: &StoredPasskey,
    ) -> Result<String, PasskeyError> {
        let (handle, _) = self.webauthn.identify_discoverable_authentication(answer).map_err(refused)?;
        if handle != user_handle(&stored.user_id) {
            return Err(PasskeyError::Unknown);
        }
        let state: DiscoverableAuthentication = parse(state)?;
        let mut passkey: Passkey = parse(&stored.credential)?;
        let result = self
            .webauthn
            .finish_discoverable_authentication(answer, state, &[DiscoverableKey::from(&passkey)])
            .map_err(refused)?;
        passkey.update_credential(&result);
        Ok(json(&passkey))
    }

    /// A passkey as the second step after the password: one of `stored`, the user's.
    pub fn start_second_factor(&self, stored: &[StoredPasskey]) -> Result<Ceremony, PasskeyError> {
        let keys: Vec<Passkey> = stored.iter().filter_map(|p| parse(&p.credential).ok()).collect();
        let (options, state) = self.webauthn.start_passkey_authentication(&keys).map_err(refused)?;
        Ok(Ceremony { options: serde_json::to_value(&options.public_key).map_err(refused)?, state: json(&state) })
    }

    /// Checks a second-step `answer`; which passkey it was and that passkey after this use.
    pub fn finish_second_factor(
        &self,
        answer: &str,
        state: &str,
        stored: &[StoredPasskey],
    ) -> Result<(String, String), PasskeyError> {
        let answer: PublicKeyCredential = parse(answer)?;
        let state: PasskeyAuthentication = parse(state)?;
        let result = self.webauthn.finish_passkey_authentication(&answer, &state).map_err(refused)?;
        let id = crypto::b64url(result.cred_id().as_ref());
        let used = stored.iter().find(|p| p.credential_id == id).ok_or(PasskeyError::Unknown)?;
        let mut passkey: Passkey = parse(&used.credential)?;
        passkey.update_credential(&result);
        Ok((id, json(&passkey)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(issuer: &str, rp_id: Option<&str>) -> Config {
        Config { issuer: issuer.into(), webauthn_rp_id: rp_id.map(str::to_owned), ..Config::default() }
    }

    #[test]
    fn the_relying_party_is_the_issuers_host() {
        assert!(Passkeys::from_config(&config("https://id.example.com", None)).unwrap().is_some());
        assert!(Passkeys::from_config(&config("http://localhost:8080", None)).unwrap().is_some());
        // WebAuthn has no relying party ids that are IP addresses.
        assert!(Passkeys::from_config(&config("http://127.0.0.1:8080", None)).unwrap().is_none());
        // A parent domain may be the id; another site may not.
        assert!(Passkeys::from_config(&config("https://id.example.com", Some("example.com"))).unwrap().is_some());
        assert!(Passkeys::from_config(&config("https://id.example.com", Some("evil.test"))).is_err());
    }

    #[test]
    fn registration_asks_for_a_discoverable_credential_and_user_verification() {
        let passkeys = Passkeys::from_config(&config("https://id.example.com", None)).unwrap().unwrap();
        let user = User { id: "sub-alice".into(), username: "alice".into(), ..User::default() };
        let ceremony = passkeys.start_registration(&user, &[]).unwrap();
        let selection = &ceremony.options["authenticatorSelection"];
        assert_eq!(selection["residentKey"], "required");
        assert_eq!(selection["userVerification"], "required");
        assert_eq!(ceremony.options["rp"]["id"], "id.example.com");
        assert_eq!(ceremony.options["user"]["name"], "alice");
        assert!(ceremony.options["challenge"].as_str().is_some_and(|c| c.len() >= 43), "a fresh 256-bit challenge");
        assert_ne!(ceremony.state, passkeys.start_registration(&user, &[]).unwrap().state);
    }

    #[test]
    fn answers_that_are_not_credentials_are_refused() {
        let passkeys = Passkeys::from_config(&config("https://id.example.com", None)).unwrap().unwrap();
        let ceremony = passkeys.start_sign_in().unwrap();
        assert!(matches!(passkeys.answer_credential("{}"), Err(PasskeyError::Malformed(_))));
        assert!(matches!(
            passkeys.finish_registration("not json", &ceremony.state, "u", "n", 0),
            Err(PasskeyError::Malformed(_))
        ));
        assert_eq!(user_handle("a"), user_handle("a"));
        assert_ne!(user_handle("a"), user_handle("b"));
    }
}
