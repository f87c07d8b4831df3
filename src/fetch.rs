//! Fetching documents that clients point to (sector identifiers, JWK Sets, request objects): https only
//! (plain http just for loopback hosts, as for the issuer), bounded in time and size, no redirects, so a
//! registration cannot make the OP wait, fill its memory, or reach around to internal addresses by
//! redirect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;

/// The largest document fetched.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Refused(&'static str),
    #[error("fetch failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the server answered {0}")]
    Status(u16),
    #[error("the document is larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
    #[error("the document is not the JSON expected: {0}")]
    Json(#[from] serde_json::Error),
}

/// How long a fetched JWK Set is reused before it is fetched again.
const CACHE_TTL: Duration = Duration::from_secs(300);
/// Cached documents at most; the cache starts afresh when full.
const CACHE_ENTRIES: usize = 256;

#[derive(Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    cache: Arc<Mutex<HashMap<String, (Instant, Bytes)>>>,
}

impl Default for Fetcher {
    fn default() -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .user_agent(concat!("oxid/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a TLS backend is compiled in");
        Self { http, cache: Arc::default() }
    }
}

/// Whether `url` may be fetched: https, or http to a loopback host.
pub fn is_fetchable(url: &url::Url) -> bool {
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    url.scheme() == "https" || (url.scheme() == "http" && loopback)
}

impl Fetcher {
    /// The body at `url`, at most `MAX_DOCUMENT_BYTES`.
    pub async fn get(&self, url: &str) -> Result<Bytes, FetchError> {
        let parsed = url::Url::parse(url).map_err(|_| FetchError::Refused("not a URL"))?;
        if !is_fetchable(&parsed) {
            return Err(FetchError::Refused("only https URLs are fetched"));
        }
        let mut response = self.http.get(parsed).send().await?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        if response.content_length().is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64) {
            return Err(FetchError::TooLarge);
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    pub async fn json<T: DeserializeOwned>(&self, url: &str) -> Result<T, FetchError> {
        Ok(serde_json::from_slice(&self.get(url).await?)?)
    }

    /// `get`, reusing a copy fetched within the last few minutes (for documents such as JWK Sets that
    /// change rarely and are needed often).
    pub async fn get_cached(&self, url: &str) -> Result<Bytes, FetchError> {
        let cached = self.cache.lock().expect("cache lock").get(url).cloned();
        if let Some((_, body)) = cached.filter(|(at, _)| at.elapsed() < CACHE_TTL) {
            return Ok(body);
        }
        let body = self.get(url).await?;
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(url.to_owned(), (Instant::now(), body.clone()));
        Ok(body)
    }
}
