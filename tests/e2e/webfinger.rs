//! OpenID Provider Issuer Discovery by WebFinger (Discovery 1.0 2).

use crate::common;

use common::{TestOp, json, urlencode};

const ISSUER_REL: &str = "http://openid.net/specs/connect/1.0/issuer";

#[tokio::test]
async fn webfinger_names_the_issuer_for_accounts_and_urls_on_its_host() {
    let op = TestOp::start().await;
    let host = op.issuer.trim_start_matches("http://").to_owned();
    let http = reqwest::Client::new();
    for resource in [format!("acct:joe@{host}"), format!("{}/joe", op.issuer)] {
        let url =
            op.url(&format!("/.well-known/webfinger?resource={}&rel={}", urlencode(&resource), urlencode(ISSUER_REL)));
        let r = http.get(url).send().await.unwrap();
        assert_eq!(r.headers()["content-type"], "application/jrd+json");
        assert_eq!(r.headers()["access-control-allow-origin"], "*", "RFC 7033 5: CORS");
        let (status, body) = json(r).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["subject"], resource);
        assert_eq!(body["links"][0]["rel"], ISSUER_REL);
        assert_eq!(body["links"][0]["href"], op.issuer.as_str());
    }
    // Another rel only: no issuer link.
    let url = op.url(&format!("/.well-known/webfinger?resource={}&rel=other", urlencode(&format!("acct:joe@{host}"))));
    let (_, body) = json(http.get(url).send().await.unwrap()).await;
    assert_eq!(body["links"], serde_json::json!([]));
}

#[tokio::test]
async fn webfinger_refuses_bad_and_foreign_resources() {
    let op = TestOp::start().await;
    let http = reqwest::Client::new();
    let status = |q: String| {
        let http = http.clone();
        let url = op.url(&format!("/.well-known/webfinger{q}"));
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(String::new()).await, 400);
    assert_eq!(status("?resource=a&resource=b".into()).await, 400);
    assert_eq!(status(format!("?resource={}", urlencode("acct:joe@elsewhere.example"))).await, 404);
    assert_eq!(status(format!("?resource={}", urlencode("https://elsewhere.example/joe"))).await, 404);
    assert_eq!(status("?resource=garbage".into()).await, 404);
}
