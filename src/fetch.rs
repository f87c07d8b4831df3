//! Fetching documents that clients point to (sector identifiers, JWK Sets, request objects): https to
//! public addresses only, bounded in time and size, without redirects, so that a registered URL cannot
//! make the OP wait, fill its memory, or reach into its own network (SSRF). Loopback http is allowed
//! only where configured, for development.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
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
    http: Arc<OnceLock<reqwest::Client>>,
    cache: Arc<Mutex<HashMap<String, (Instant, Bytes)>>>,
    allow_loopback: bool,
}

/// Whether a URL may be registered for the OP to fetch or redirect to: https, or http to a loopback
/// host (development). Where it leads is checked again when it is fetched.
pub fn is_https_or_loopback(url: &url::Url) -> bool {
    url.scheme() == "https" || (url.scheme() == "http" && is_loopback_host(url))
}

fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Whether the OP may connect to `ip`: public addresses only, so that a URL a client registers cannot
/// reach the OP's own network (private, link-local such as cloud metadata, shared, reserved ranges);
/// loopback only where allowed (development and tests).
fn is_reachable(ip: IpAddr, allow_loopback: bool) -> bool {
    if ip.is_loopback() {
        return allow_loopback;
    }
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_reachable(IpAddr::V4(v4), allow_loopback);
            }
            // Translated addresses lead to the IPv4 address inside: judged by it, and never as this
            // machine's own loopback.
            if let Some(v4) = embedded_ipv4(v6) {
                return is_reachable(IpAddr::V4(v4), false);
            }
            let s = v6.segments();
            !(v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated, RFC 3879, still routed by some)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 0x0001) // local-use NAT64, RFC 8215
                || s[..6] == [0; 6]) // IPv4-compatible ::a.b.c.d (deprecated, RFC 4291 2.5.5.1)
        }
    }
}

/// The IPv4 address inside a NAT64 (64:ff9b::/96, RFC 6052) or 6to4 (2002::/16, RFC 3056) address.
fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0x0064, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the host has no public address")]
struct NoPublicAddress;

/// Resolves host names to the addresses the OP may connect to, and only those (checked at resolution,
/// so a name cannot resolve to a public address for a check and a private one for the connection).
struct ReachableOnly {
    allow_loopback: bool,
}

impl Resolve for ReachableOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let reachable: Vec<SocketAddr> =
                addrs.into_iter().filter(|a| is_reachable(a.ip(), allow_loopback)).collect();
            if reachable.is_empty() {
                return Err(Box::new(NoPublicAddress) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(reachable.into_iter()) as Addrs)
        })
    }
}

impl Fetcher {
    /// `allow_loopback` lets URLs on this machine be fetched: for development and tests only.
    pub fn new(allow_loopback: bool) -> Self {
        Self { http: Arc::default(), cache: Arc::default(), allow_loopback }
    }

    /// The HTTP client, built at the first fetch rather than at start: building it reads the system's CA
    /// certificates into memory (OpenSSL, about 1.6 MiB), which a server whose clients never have it fetch
    /// anything does not need (issue 12, idle RSS).
    fn http(&self) -> Result<&reqwest::Client, FetchError> {
        if let Some(client) = self.http.get() {
            return Ok(client);
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .dns_resolver(Arc::new(ReachableOnly { allow_loopback: self.allow_loopback }))
            // A proxy from the environment (HTTPS_PROXY…) would resolve the target itself, out of
            // the resolver's sight: never used.
            .no_proxy()
            .user_agent(concat!("oxid/", env!("CARGO_PKG_VERSION")))
            .build()?;
        // Two first fetches at once may both build one; the first stored is kept.
        Ok(self.http.get_or_init(|| client))
    }

    /// `url` if the OP may connect to it: https (loopback http where allowed), and a literal address
    /// only if public (names are checked as they resolve).
    fn checked(&self, url: &str) -> Result<url::Url, FetchError> {
        let parsed = url::Url::parse(url).map_err(|_| FetchError::Refused("not a URL"))?;
        let loopback_ok = self.allow_loopback && is_loopback_host(&parsed);
        if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback_ok) {
            return Err(FetchError::Refused("only https URLs are fetched"));
        }
        // Literal addresses are connected to without resolution, so they are checked here.
        let literal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if literal.is_some_and(|ip| !is_reachable(ip, self.allow_loopback)) {
            return Err(FetchError::Refused("the address is not a public one"));
        }
        Ok(parsed)
    }

    /// POSTs `form` to `url` (a notification such as a Logout Token) and waits at most `timeout` for
    /// the answer, which must be a success; its body is not read.
    pub async fn post_form(&self, url: &str, form: &[(&str, &str)], timeout: Duration) -> Result<(), FetchError> {
        Self::succeeded(self.http()?.post(self.checked(url)?).form(form).timeout(timeout).send().await?)
    }

    /// POSTs `body` as JSON with a bearer token (a CIBA ping, CIBA 10.2); Ok when answered with 2xx.
    pub async fn post_json(
        &self,
        url: &str,
        bearer: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> Result<(), FetchError> {
        let request = self
            .http()?
            .post(self.checked(url)?)
            .bearer_auth(bearer)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .timeout(timeout);
        Self::succeeded(request.send().await?)
    }

    fn succeeded(response: reqwest::Response) -> Result<(), FetchError> {
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        Ok(())
    }

    /// The body at `url`, at most `MAX_DOCUMENT_BYTES`.
    pub async fn get(&self, url: &str) -> Result<Bytes, FetchError> {
        let mut response = self.http()?.get(self.checked(url)?).send().await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_reachable() {
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
            "fec0::1",
            "64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
            "64:ff9b::7f00:1",    // NAT64 of 127.0.0.1
            "64:ff9b:1::1",       // local-use NAT64
            "::10.0.0.1",         // IPv4-compatible
            "::8.8.8.8",          // IPv4-compatible, deprecated even for public addresses
            "2002:c0a8:0101::1",  // 6to4 of 192.168.1.1
            "2002:7f00:1::1",     // 6to4 of 127.0.0.1
        ] {
            assert!(!is_reachable(private.parse().unwrap(), true), "{private}");
        }
        for public in ["93.184.216.34", "2606:4700::1111", "::ffff:1.1.1.1", "64:ff9b::808:808", "2002:808:808::1"] {
            assert!(is_reachable(public.parse().unwrap(), false), "{public}");
        }
        assert!(!is_reachable("127.0.0.1".parse().unwrap(), false));
        assert!(is_reachable("127.0.0.1".parse().unwrap(), true));
    }

    #[tokio::test]
    async fn refused_before_any_connection() {
        let strict = Fetcher::new(false);
        for url in [
            "http://example.com/x",
            "https://10.0.0.1/jwks",
            "https://[fe80::1]/x",
            "http://127.0.0.1:9/x",
            "https://169.254.169.254/latest/meta-data",
            "not a url",
        ] {
            assert!(matches!(strict.get(url).await, Err(FetchError::Refused(_))), "{url}");
        }
    }

    /// A name that resolves only to loopback is refused by the resolver, before any connection: the
    /// error says so (without the filter the fetch would reach the listening server below).
    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_at_resolution() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = tokio::spawn(async move { listener.accept().await.is_ok() });
        let err = Fetcher::new(false).get(&format!("https://localhost:{port}/x")).await.unwrap_err();
        let mut chain: Vec<String> = vec![err.to_string()];
        let mut source = std::error::Error::source(&err);
        while let Some(e) = source {
            chain.push(e.to_string());
            source = e.source();
        }
        assert!(chain.iter().any(|m| m.contains("no public address")), "{chain:?}");
        assert!(!accepted.is_finished(), "no connection was made");
        accepted.abort();
    }
}
