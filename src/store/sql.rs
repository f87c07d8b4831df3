//! Column encodings both backends share: lists as JSON text, protocol types as their wire strings.

use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{StoreError, StoreResult};

pub(super) fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serializes")
}

pub(super) fn from_json<T: DeserializeOwned>(column: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

pub(super) fn parse<T: FromStr>(column: &str, text: &str) -> StoreResult<T> {
    text.parse().map_err(|_| StoreError::Corrupt(format!("{column}: {text:?}")))
}
