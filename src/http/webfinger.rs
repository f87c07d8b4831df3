//! OpenID Provider Issuer Discovery by WebFinger (Discovery 1.0 2, RFC 7033).

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::SharedState;

/// Discovery 1.0 2: the link relation naming the issuer.
const ISSUER_REL: &str = "http://openid.net/specs/connect/1.0/issuer";

/// The host a resource names: `acct:user@host` (RFC 7565) or an http(s) URL.
fn resource_host(resource: &str) -> Option<String> {
    if let Some(account) = resource.strip_prefix("acct:") {
        let (_, host) = account.rsplit_once('@')?;
        return (!host.is_empty()).then(|| host.to_ascii_lowercase());
    }
    let url = url::Url::parse(resource).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

pub async fn webfinger(State(state): State<SharedState>, RawQuery(query): RawQuery) -> Response {
    // `rel` may repeat (RFC 7033 4.1), so the query is read as a list, not through `Params`.
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let resources: Vec<&str> = pairs.iter().filter(|(k, _)| k == "resource").map(|(_, v)| v.as_str()).collect();
    let [resource] = resources.as_slice() else {
        return (StatusCode::BAD_REQUEST, "exactly one resource parameter is required").into_response();
    };
    let issuer = url::Url::parse(&state.config.issuer).expect("validated at start");
    let our_host = match (issuer.host_str(), issuer.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => String::new(),
    };
    // Only resources on this OP's host: answering for any user there (existing or not) reveals nothing.
    if resource_host(resource).as_deref() != Some(our_host.as_str()) {
        return (StatusCode::NOT_FOUND, "unknown resource").into_response();
    }
    let rels: Vec<&str> = pairs.iter().filter(|(k, _)| k == "rel").map(|(_, v)| v.as_str()).collect();
    let links = if rels.is_empty() || rels.contains(&ISSUER_REL) {
        json!([{ "rel": ISSUER_REL, "href": state.config.issuer }])
    } else {
        json!([])
    };
    let body = json!({ "subject": resource, "links": links });
    ([(header::CONTENT_TYPE, "application/jrd+json"), (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], body.to_string())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::resource_host;

    #[test]
    fn resource_hosts() {
        assert_eq!(resource_host("acct:alice@Example.com").as_deref(), Some("example.com"));
        assert_eq!(resource_host("acct:a@b@example.com").as_deref(), Some("example.com"));
        assert_eq!(resource_host("https://example.com:8443/joe").as_deref(), Some("example.com:8443"));
        assert_eq!(resource_host("acct:nohost"), None);
        assert_eq!(resource_host("not a uri"), None);
    }
}
