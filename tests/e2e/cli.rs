//! The `oxid` binary as an operator uses it: configuration errors, user/client/key management, and
//! a real `oxid serve` process that a user signs in to with CLI-made credentials.

use crate::common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{Browser, CHALLENGE, REDIRECT_URI, VERIFIER, query, urlencode};

/// Runs `oxid ARGS` against the database `db`.
pub(crate) fn oxid(db: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oxid"))
        .args(args)
        .env("OXID_DATABASE_URL", db)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn ok(output: Output) -> String {
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// Asserts that a command failed at run time (exit code 1) saying `message` on standard error.
fn refused(output: Output, message: &str) {
    failed_with(output, 1, message);
}

/// Asserts that a command was given values it cannot use (exit code 2, as for configuration errors).
fn misused(output: Output, message: &str) {
    failed_with(output, 2, message);
}

fn failed_with(output: Output, code: i32, message: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "stderr: {stderr}");
    assert!(stderr.contains(message), "expected {message:?} in: {stderr}");
}

fn value_of(stdout: &str, key: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {stdout}"))
        .trim()
        .to_owned()
}

#[test]
fn bad_configuration_is_one_line_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Env, &[&str]); 4] = [
        (&[("OXID_ISSUER", "ftp://example.com")], &["user", "list"]),
        (&[("OXID_LISTEN", "not-an-address")], &["user", "list"]),
        (&[("OXID_DATABASE_URL", "mysql://x")], &["user", "list"]),
        (&[], &["--config", "/nonexistent/oxid.toml", "user", "list"]),
    ];
    for (env, args) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_oxid"))
            .args(args)
            .env("OXID_DATABASE_URL", format!("sqlite://{}/oxid.db", dir.path().display()))
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{env:?} {args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.starts_with("oxid: configuration error"), "{stderr}");
    }
    // A TOML file works, and its unknown keys are errors too, named with the file and a suggestion.
    let file = dir.path().join("oxid.toml");
    std::fs::write(&file, "issuer = \"https://id.example\"\nlistn = \"127.0.0.1:1\"\n").unwrap();
    let db = common::test_database_url_blocking(dir.path());
    ok(oxid(&db, &["migrate"], None));
    let out = oxid(&db, &["--config", file.to_str().unwrap(), "user", "list"], None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let expected = format!("unknown setting `listn` in {}, line 2; did you mean `listen`?", file.display());
    assert!(stderr.contains(&expected), "{stderr}");
    // An unreachable PostgreSQL is reported as what it is, with its address and without the password.
    let out = oxid("postgres://oxid:s3cret@127.0.0.1:1/oxid", &["user", "list"], None);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot connect to PostgreSQL at 127.0.0.1:1") && stderr.contains("refused"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
    // Unknown OXID_ variables are ignored with a warning (and a suggestion when one is close); a
    // HOST:PORT listen address is resolved.
    let out = Command::new(env!("CARGO_BIN_EXE_oxid"))
        .args(["user", "list"])
        .env("OXID_DATABASE_URL", &db)
        .env("OXID_LISTN", "127.0.0.1:1")
        .env("OXID_PORT_8080_TCP", "tcp://10.0.0.7:8080")
        .env("OXID_LISTEN", "localhost:8080")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("ignoring OXID_LISTN: not a setting (did you mean OXID_LISTEN?)"), "{stderr}");
    assert!(stderr.contains("ignoring OXID_PORT_8080_TCP: not a setting"), "{stderr}");
    std::fs::write(&file, "issuer = \"https://id.example\"\naccess_token_lifetime = 600\n").unwrap();
    ok(oxid(&db, &["--config", file.to_str().unwrap(), "user", "list"], None));
}

#[test]
fn users_are_managed_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = &common::test_database_url_blocking(dir.path());
    // Hardening 18: a command other than serve/migrate does not make an empty database where it was
    // pointed by mistake; it names the path it looked at.
    if d.starts_with("sqlite://") {
        let missing = dir.path().join("oxid.db");
        refused(oxid(d, &["user", "list"], None), &format!("no database at {}", missing.display()));
        assert!(!missing.exists());
    }
    ok(oxid(d, &["migrate"], None));
    let out = ok(oxid(
        d,
        &["user", "add", "alice", "--email", "a@example.com", "--name", "Alice A", "--password-stdin"],
        Some("s3cret-password\n"),
    ));
    assert!(out.contains("added user alice"));
    // Duplicate, short password, and missing --password-stdin are errors.
    refused(
        oxid(d, &["user", "add", "alice", "--password-stdin"], Some("another-password\n")),
        "user alice already exists",
    );
    misused(
        oxid(d, &["user", "add", "bob", "--password-stdin"], Some("short\n")),
        "password must be 8 to 1024 characters",
    );
    assert_eq!(oxid(d, &["user", "add", "bob"], None).status.code(), Some(2));
    let list = ok(oxid(d, &["user", "list"], None));
    assert!(list.contains("alice") && list.contains("a@example.com") && list.contains("active"));
    // Further claims (Core 5.1), checked as they are set.
    let with_claims =
        ["user", "add", "carol", "--claim", "nickname=Caz", "--claim", "groups=[\"a\"]", "--password-stdin"];
    ok(oxid(d, &with_claims, Some("carols-password-1\n")));
    let set =
        ["user", "claims", "carol", "--set", "birthdate=1980-01-02", "--set", "name#fr=Carole", "--unset", "groups"];
    let claims = ok(oxid(d, &set, None));
    assert!(claims.contains("nickname: \"Caz\"") && claims.contains("birthdate: \"1980-01-02\""), "{claims}");
    assert!(claims.contains("name#fr: \"Carole\"") && !claims.contains("groups"), "{claims}");
    for (bad, bad_message) in [
        ("birthdate=yesterday", "birthdate must be YYYY-MM-DD"),
        ("sub=other", "sub describes the token"),
        ("email=x@example.com", "email has its own option"),
        ("noequals", "takes NAME=VALUE"),
        ("picture=[1", "picture: the value is not valid JSON"),
    ] {
        misused(oxid(d, &["user", "claims", "carol", "--set", bad], None), bad_message);
    }
    refused(oxid(d, &["user", "claims", "nobody"], None), "no user nobody");
    ok(oxid(d, &["user", "passwd", "alice", "--password-stdin"], Some("new-password-123\n")));
    ok(oxid(d, &["user", "disable", "alice"], None));
    assert!(ok(oxid(d, &["user", "list"], None)).contains("disabled"));
    ok(oxid(d, &["user", "delete", "alice"], None));
    assert!(!ok(oxid(d, &["user", "list"], None)).contains("alice"));
    refused(oxid(d, &["user", "delete", "alice"], None), "no user alice");
}

#[test]
fn clients_and_keys_are_managed_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = &common::test_database_url_blocking(dir.path());
    ok(oxid(d, &["migrate"], None));
    let out = ok(oxid(
        d,
        &["client", "add", "--name", "Web", "--redirect-uri", "https://rp.example/cb", "--id", "web"],
        None,
    ));
    assert_eq!(value_of(&out, "client_id"), "web");
    let secret = value_of(&out, "client_secret");
    assert!(secret.len() >= 32);
    let out =
        ok(oxid(d, &["client", "add", "--name", "SPA", "--redirect-uri", "https://spa.example/cb", "--public"], None));
    assert!(!out.contains("client_secret"), "public clients get no secret");
    // Invalid registrations.
    misused(
        oxid(d, &["client", "add", "--name", "X", "--redirect-uri", "https://x/cb#frag"], None),
        "redirect_uri must not contain a fragment",
    );
    misused(oxid(d, &["client", "add", "--name", "X"], None), "redirect_uris: at least one is needed");
    misused(
        oxid(
            d,
            &[
                "client",
                "add",
                "--name",
                "X",
                "--redirect-uri",
                "https://x/cb",
                "--public",
                "--grant-type",
                "client_credentials",
            ],
            None,
        ),
        "grant_types: a client without credentials cannot use client_credentials",
    );
    misused(
        oxid(
            d,
            &["client", "add", "--name", "X", "--redirect-uri", "https://x/cb", "--auth-method", "private_key_jwt"],
            None,
        ),
        "token_endpoint_auth_method: private_key_jwt needs jwks or jwks_uri",
    );
    misused(
        oxid(
            d,
            &["client", "add", "--name", "X", "--redirect-uri", "https://x/cb", "--secret-stdin"],
            Some("too-short\n"),
        ),
        "a client secret must be at least 32 characters",
    );
    let out = ok(oxid(
        d,
        &["client", "add", "--name", "Own", "--redirect-uri", "https://o/cb", "--id", "own", "--secret-stdin"],
        Some("an-operator-chosen-secret-of-40-characters\n"),
    ));
    assert_eq!(value_of(&out, "client_secret"), "an-operator-chosen-secret-of-40-characters");

    // Response types: registered per client, validated, shown.
    let hybrid = [
        "client",
        "add",
        "--name",
        "Hybrid",
        "--redirect-uri",
        "https://h/cb",
        "--id",
        "hybrid",
        "--response-type",
        "id_token code",
        "--response-type",
        "code",
    ];
    ok(oxid(d, &hybrid, None));
    let show = ok(oxid(d, &["client", "show", "hybrid"], None));
    assert!(show.contains("response_types: code id_token") && show.contains("response_types: code\n"), "{show}");
    assert!(show.contains("grant_types: implicit") && show.contains("made_by: operator"), "{show}");
    let bad = ["client", "add", "--name", "X", "--redirect-uri", "https://x/cb", "--response-type", "token"];
    misused(oxid(d, &bad, None), "response_types: \"token\" is not supported");
    // Scopes the client may obtain for itself (RFC 7591 2 `scope`), for client_credentials.
    let service = ["client", "add", "--name", "Svc", "--grant-type", "client_credentials"];
    ok(oxid(d, &[&service[..], &["--id", "svc", "--scope", "api.read", "--scope", "api.write"]].concat(), None));
    assert!(ok(oxid(d, &["client", "show", "svc"], None)).contains("scope: api.read api.write"));
    misused(oxid(d, &[&service[..], &["--scope", "bad\\scope"]].concat(), None), "scope:");
    // Pairwise subjects (Core 8.1): the redirect URIs' one host is the sector; several hosts need a
    // sector_identifier_uri (tests/e2e/subjects.rs fetches one).
    let pairwise = [
        "client",
        "add",
        "--name",
        "P",
        "--redirect-uri",
        "https://p.example/cb",
        "--id",
        "pw",
        "--subject-type",
        "pairwise",
    ];
    ok(oxid(d, &pairwise, None));
    let show = ok(oxid(d, &["client", "show", "pw"], None));
    assert!(show.contains("subject_type: pairwise") && show.contains("sector: p.example"), "{show}");
    let two_hosts = [
        "client",
        "add",
        "--name",
        "Q",
        "--redirect-uri",
        "https://a.example/cb",
        "--redirect-uri",
        "https://b.example/cb",
        "--subject-type",
        "pairwise",
    ];
    misused(oxid(d, &two_hosts, None), "redirect URIs on several hosts need a sector_identifier_uri");

    let show = ok(oxid(d, &["client", "show", "web"], None));
    assert!(show.contains("https://rp.example/cb") && show.contains("client_secret_basic"));
    assert!(show.contains("response_types: code"), "code only by default: {show}");
    assert!(!show.contains(&secret), "secrets are shown once only");
    let rotated = value_of(&ok(oxid(d, &["client", "rotate-secret", "web"], None)), "client_secret");
    assert_ne!(rotated, secret);
    assert!(ok(oxid(d, &["client", "list"], None)).contains("web"));
    ok(oxid(d, &["client", "delete", "web"], None));
    refused(oxid(d, &["client", "show", "web"], None), "no client web");

    let keys = ok(oxid(d, &["keys", "list"], None));
    for alg in ["RS256", "ES256", "EdDSA", "PS256"] {
        assert!(keys.lines().any(|l| l.contains(alg) && l.contains("current")), "{keys}");
    }
    ok(oxid(d, &["keys", "rotate", "--alg", "ES256", "--activate-after", "0"], None));
    let keys = ok(oxid(d, &["keys", "list"], None));
    assert_eq!(keys.lines().filter(|l| l.contains("ES256") && l.ends_with("current")).count(), 1, "{keys}");
    assert_eq!(keys.lines().filter(|l| l.contains("ES256") && l.contains("retired")).count(), 1, "{keys}");
    // Hardening 21: by default a new key is published first and signs an hour later.
    let out = ok(oxid(d, &["keys", "rotate", "--alg", "RS256"], None));
    assert!(out.contains("published now, signing from"), "{out}");
    let keys = ok(oxid(d, &["keys", "list"], None));
    assert_eq!(keys.lines().filter(|l| l.contains("RS256") && l.contains("next, signs from")).count(), 1, "{keys}");
    assert_eq!(keys.lines().filter(|l| l.contains("RS256") && l.contains("current, retires")).count(), 1, "{keys}");
    misused(oxid(d, &["keys", "rotate", "--alg", "HS256"], None), "--alg: unsupported SigningAlg: HS256");
    let out = ok(oxid(d, &["keys", "rotate", "--encryption"], None));
    assert!(out.contains("the previous ones keep decrypting"), "{out}");
    ok(oxid(d, &["migrate"], None));
}

/// The README's path: add a user and a client with the CLI, run `oxid serve`, sign in.
#[tokio::test]
async fn a_newcomer_signs_in_to_a_served_op() {
    let dir = tempfile::tempdir().unwrap();
    let d = &common::test_database_url(dir.path()).await;
    // The README's deployment: migrate, then users and clients, then serve.
    ok(oxid(d, &["migrate"], None));
    ok(oxid(
        d,
        &["user", "add", "alice", "--email", "alice@example.com", "--password-stdin"],
        Some(&format!("{}\n", common::PASSWORD)),
    ));
    let out = ok(oxid(
        d,
        &["client", "add", "--name", "My App", "--redirect-uri", REDIRECT_URI, "--id", "myapp", "--skip-consent"],
        None,
    ));
    let secret = value_of(&out, "client_secret");

    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    // Only the listen address is set, as a newcomer would: the issuer follows it (Hardening 16), and a
    // platform's own OXID_ variables (Kubernetes) do not stop the start (Hardening 15).
    let mut server = serve(d, port, &[("OXID_PORT", "tcp://10.0.0.7:8080"), ("OXID_SERVICE_HOST", "10.0.0.7")]).await;
    let http = reqwest::Client::new();
    let discovery = http.get(format!("{issuer}/.well-known/openid-configuration")).send().await.unwrap();
    assert_eq!(discovery.json::<serde_json::Value>().await.unwrap()["issuer"], issuer.as_str());

    let browser = Browser::for_issuer(&issuer);
    let url = format!(
        "{issuer}/authorize?response_type=code&client_id=myapp&redirect_uri={}&scope=openid%20email&state=s&nonce=n\
         &code_challenge={CHALLENGE}&code_challenge_method=S256",
        urlencode(REDIRECT_URI)
    );
    let callback = browser.sign_in(&url, "alice").await;
    let code = query(&callback)["code"].clone();
    let (status, tokens) =
        common::json(common::exchange_code_at(&issuer, "myapp", &secret, &code, Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");
    let info = http
        .get(format!("{issuer}/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let (_, claims) = common::json(info).await;
    assert_eq!(claims["email"], "alice@example.com");

    // SIGTERM: a graceful stop with exit status 0.
    assert!(Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap().success());
    let status = server.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `oxid serve` on `port` against the database `d` (with extra environment `env`) and waits
/// until it answers.
async fn serve(d: &str, port: u16, env: &[(&str, &str)]) -> std::process::Child {
    let mut server = Command::new(env!("CARGO_BIN_EXE_oxid"))
        .args(["serve"])
        .env("OXID_DATABASE_URL", d)
        .env("OXID_LISTEN", format!("127.0.0.1:{port}"))
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http.get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_ok() {
            return server;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = server.kill();
    let _ = server.wait();
    panic!("oxid serve did not come up");
}

/// Issue 12: nothing is acknowledged before it is committed. Under load (code flows with
/// `offline_access` from several clients at once), the server is killed with SIGKILL; after a
/// restart every refresh token a client received works, once.
#[tokio::test]
async fn a_killed_server_loses_no_token_it_gave_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = &common::test_database_url(dir.path()).await;
    ok(oxid(d, &["migrate"], None));
    let password = format!("{}\n", common::PASSWORD);
    ok(oxid(d, &["user", "add", "alice", "--password-stdin"], Some(&password)));
    let out = ok(oxid(
        d,
        &["client", "add", "--name", "App", "--redirect-uri", REDIRECT_URI, "--id", "app", "--skip-consent"],
        None,
    ));
    let secret = value_of(&out, "client_secret");
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let mut server = serve(d, port, &[]).await;
    let authorize = format!(
        "{issuer}/authorize?response_type=code&client_id=app&redirect_uri={}&scope=openid%20offline_access\
         &code_challenge={CHALLENGE}&code_challenge_method=S256",
        urlencode(REDIRECT_URI)
    );
    let browser = std::sync::Arc::new(Browser::for_issuer(&issuer));
    browser.sign_in(&authorize, "alice").await;

    // Each worker runs code flows in the signed-in browser until the server is gone, keeping every
    // refresh token it received.
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (browser, received, authorize, secret) =
            (browser.clone(), received.clone(), authorize.clone(), secret.clone());
        let token_url = format!("{issuer}/token");
        workers.spawn(async move {
            let http = reqwest::Client::new();
            while let Ok(page) = browser.try_get(&authorize).await {
                let code = query(&page.location.expect("a signed-in browser is sent back with a code"))["code"].clone();
                let form = [
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT_URI),
                    ("code_verifier", VERIFIER),
                ];
                let Ok(response) = http.post(&token_url).basic_auth("app", Some(&secret)).form(&form).send().await
                else {
                    break;
                };
                let Ok(tokens) = response.json::<serde_json::Value>().await else { break };
                received.lock().unwrap().push(tokens["refresh_token"].as_str().unwrap().to_owned());
            }
        });
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while received.lock().unwrap().len() < 40 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.kill().unwrap(); // SIGKILL: no shutdown, no flush
    server.wait().unwrap();
    while let Some(worker) = workers.join_next().await {
        worker.expect("a worker stops only when the server is gone");
    }
    assert!(received.lock().unwrap().len() >= 40, "the load ran before the kill");

    let mut server = serve(d, port, &[]).await;
    let tokens = received.lock().unwrap().clone();
    let http = reqwest::Client::new();
    for token in &tokens {
        let form = [("grant_type", "refresh_token"), ("refresh_token", token.as_str())];
        let r = http.post(format!("{issuer}/token")).basic_auth("app", Some(&secret)).form(&form).send().await.unwrap();
        assert_eq!(r.status(), 200, "a refresh token given out before the kill: {}", r.text().await.unwrap());
    }
    // Once: the first one again is a replay.
    let form = [("grant_type", "refresh_token"), ("refresh_token", tokens[0].as_str())];
    let r = http.post(format!("{issuer}/token")).basic_auth("app", Some(&secret)).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 400);
    server.kill().unwrap();
    server.wait().unwrap();
}

async fn sign_in_for_tokens(op: &common::TestOp, secret: &str, b: &Browser) -> serde_json::Value {
    let url = op.authorize_url("webapp", "").replace("scope=openid%20email%20profile", "scope=openid%20offline_access");
    let callback = b.sign_in(&url, "alice").await;
    let code = query(&callback)["code"].clone();
    let (status, tokens) = common::json(common::exchange_code(op, "webapp", secret, &code, Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

async fn signed_in(op: &common::TestOp, b: &Browser) -> bool {
    let page = b.get(&op.authorize_url("webapp", "&prompt=none")).await;
    !query(&page.location.unwrap()).contains_key("error")
}

async fn userinfo_status(op: &common::TestOp, tokens: &serde_json::Value) -> u16 {
    common::userinfo(op, tokens["access_token"].as_str().unwrap()).await.status().as_u16()
}

async fn refresh(op: &common::TestOp, secret: &str, tokens: &serde_json::Value) -> (u16, serde_json::Value) {
    let form = [("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())];
    let request = reqwest::Client::new().post(op.url("/token")).basic_auth("webapp", Some(secret)).form(&form);
    let (status, body) = common::json(request.send().await.unwrap()).await;
    (status.as_u16(), body)
}

/// Runs the binary off the async runtime (it waits for the process); a password it reads is the test
/// password again, so that the user can sign in afterwards.
async fn run(db: &str, args: &'static [&'static str]) -> String {
    let db = db.to_owned();
    let stdin = format!("{}\n", common::PASSWORD);
    tokio::task::spawn_blocking(move || ok(oxid(&db, args, Some(&stdin)))).await.unwrap()
}

/// `user passwd` ends the user's sessions, and with `--revoke-tokens` their tokens; `user disable`
/// ends both at once. Run by the binary against a live server's database.
#[tokio::test]
async fn password_changes_and_disabling_end_what_the_user_had() {
    let op = common::TestOp::start().await;
    op.add_user("alice").await;
    let (_, secret) =
        op.add_client("webapp", oxid::model::ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    let secret = secret.unwrap();
    let db = &op.database_url;

    let b = Browser::new(&op);
    let tokens = sign_in_for_tokens(&op, &secret, &b).await;
    assert!(signed_in(&op, &b).await);
    let out = run(db, &["user", "passwd", "alice", "--password-stdin"]).await;
    assert!(out.contains("their sessions ended"), "{out}");
    assert!(!signed_in(&op, &b).await, "the session ended with the password change");
    assert_eq!(userinfo_status(&op, &tokens).await, 200, "tokens stay without --revoke-tokens");
    let (status, tokens) = refresh(&op, &secret, &tokens).await;
    assert_eq!(status, 200, "{tokens}");

    let b = Browser::new(&op);
    let fresh = sign_in_for_tokens(&op, &secret, &b).await;
    run(db, &["user", "passwd", "alice", "--password-stdin", "--revoke-tokens"]).await;
    assert!(!signed_in(&op, &b).await);
    for t in [&tokens, &fresh] {
        assert_eq!(userinfo_status(&op, t).await, 401);
        assert_eq!(refresh(&op, &secret, t).await.1["error"], "invalid_grant");
    }

    let b = Browser::new(&op);
    let tokens = sign_in_for_tokens(&op, &secret, &b).await;
    run(db, &["user", "disable", "alice"]).await;
    assert!(!signed_in(&op, &b).await);
    assert_eq!(userinfo_status(&op, &tokens).await, 401);
    assert_eq!(refresh(&op, &secret, &tokens).await.1["error"], "invalid_grant");
}

/// Hardening 2: usernames made before canonical forms existed are brought to theirs by `migrate`
/// (and `serve`); those that cannot be (another user has the form) are reported, and can still be
/// managed as written; `user add` stores the canonical form.
#[tokio::test]
async fn stored_usernames_are_put_in_canonical_form() {
    let op = common::TestOp::start().await;
    for name in ["Erin", "Dave", "dave"] {
        let mut user = op.add_user("placeholder").await;
        op.store.delete_user("placeholder", oxid::config::Config::default().logout(oxid::model::now())).await.unwrap();
        user.id = format!("sub-{name}");
        user.username = name.into();
        op.store.insert_user(&user).await.unwrap();
    }
    let db = op.database_url.clone();
    let migrated = tokio::task::spawn_blocking(move || {
        let out = oxid(&db, &["migrate"], None);
        assert!(out.status.success());
        let stderr = String::from_utf8(out.stderr).unwrap();
        let renamed = ok(oxid(&db, &["user", "rename", "Dave", "david"], None));
        let added = ok(oxid(&db, &["user", "add", "Carol", "--password-stdin"], Some("carols-password\n")));
        (stderr, renamed, added, ok(oxid(&db, &["user", "list"], None)))
    });
    let (stderr, renamed, added, list) = migrated.await.unwrap();
    assert!(stderr.contains("user \"Dave\" (sub sub-Dave) cannot become \"dave\""), "{stderr}");
    assert!(renamed.contains("renamed Dave to david"), "{renamed}");
    assert!(added.contains("added user carol"), "{added}");
    let names: Vec<&str> = list.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    for expected in ["erin", "david", "dave", "carol"] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    assert!(!names.contains(&"Erin") && !names.contains(&"Dave"), "{names:?}");
}

/// Hardening 11: security events land in the audit log (and no secret with them), readable with
/// `oxid audit list`, per user and from a time on.
#[tokio::test]
async fn security_events_are_in_the_audit_log() {
    let op = common::TestOp::start_with(|c| c.login_max_failures_per_account = 2).await;
    op.add_user("alice").await;
    let (_, secret) = op.add_client("webapp", oxid::model::ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    let secret = secret.unwrap();
    let b = Browser::new(&op);
    let login = b.follow(b.get(&op.authorize_url("webapp", "")).await).await;
    assert_eq!(b.submit_login(&login, "alice", "not the password").await.status, 401);
    let consent = b.follow(b.submit_login(&login, "Alice", common::PASSWORD).await).await;
    let callback = b.follow(b.submit_consent(&consent, "allow").await).await.location.unwrap();
    let code = query(&callback)["code"].clone();
    for _ in 0..2 {
        common::exchange_code(&op, "webapp", &secret, &code, Some(VERIFIER)).await;
    }
    let other = Browser::new(&op);
    let page = other.follow(other.get(&op.authorize_url("webapp", "")).await).await;
    for _ in 0..3 {
        other.submit_login(&page, "alice", "still not it").await;
    }

    let db = op.database_url.clone();
    let (all, none_since) = tokio::task::spawn_blocking(move || {
        ok(oxid(&db, &["client", "rotate-secret", "webapp"], None));
        (
            ok(oxid(&db, &["audit", "list", "--user", "ALICE"], None)),
            ok(oxid(&db, &["audit", "list", "--since", "2100-01-01T00:00:00Z"], None)),
        )
    })
    .await
    .unwrap();
    let kinds: Vec<&str> = all.lines().skip(1).filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert_eq!(
        kinds,
        // A success clears the account's failures: two more fail, the third is throttled.
        ["login_failed", "login_succeeded", "consent_given", "login_failed", "login_failed", "login_throttled"],
        "{all}"
    );
    assert!(all.contains("wrong password") && all.contains("127.0.0.1") && all.contains("scope "), "{all}");
    assert!(!all.contains("not the password") && !all.contains(common::PASSWORD), "no secret: {all}");
    assert_eq!(none_since.lines().count(), 1, "only the header for a time in the future: {none_since}");
    let db = op.database_url.clone();
    let everything = tokio::task::spawn_blocking(move || ok(oxid(&db, &["audit", "list"], None))).await.unwrap();
    assert!(everything.contains("grant_revoked_on_reuse") && everything.contains("webapp"), "{everything}");
    assert!(everything.contains("client_changed") && everything.contains("secret rotated"), "{everything}");
    assert!(!everything.contains(&secret), "{everything}");
}

/// `oxid session list | end | notifications` against a live server's database, and the logout
/// metadata of `client add`.
#[tokio::test]
async fn sessions_are_listed_and_ended_from_the_cli() {
    let op = common::TestOp::start().await;
    op.add_user("alice").await;
    let (_, secret) =
        op.add_client("webapp", oxid::model::ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    let db = op.database_url.clone();
    let b = Browser::new(&op);
    let tokens = sign_in_for_tokens(&op, &secret.unwrap(), &b).await;
    let sid = common::jwt_payload(tokens["id_token"].as_str().unwrap())["sid"].as_str().unwrap().to_owned();
    // Ids are base64url and may begin with '-': taken as the id, not as an option.
    refused(oxid(&db, &["session", "end", "-sid-that-starts-with-a-dash"], None), "no such session");
    refused(oxid(&db, &["client", "show", "-client-id-with-a-dash"], None), "no client");
    let cli = |args: Vec<String>| {
        let db = db.clone();
        tokio::task::spawn_blocking(move || oxid(&db, &args.iter().map(String::as_str).collect::<Vec<_>>(), None))
    };
    let args = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();

    let listed = ok(cli(args(&["session", "list", "--user", "alice"])).await.unwrap());
    let row = listed.lines().find(|l| l.starts_with(&sid)).unwrap_or_else(|| panic!("{sid} not in\n{listed}"));
    assert!(row.contains("alice") && row.contains("127.0.0.1") && row.contains("webapp"), "{row}");
    refused(cli(args(&["session", "end", "no-such-session"])).await.unwrap(), "no such session");

    let ended = ok(cli(args(&["session", "end", &sid])).await.unwrap());
    assert!(ended.contains(&sid) && ended.contains("webapp"), "{ended}");
    assert!(!signed_in(&op, &b).await);
    assert!(!ok(cli(args(&["session", "list"])).await.unwrap()).contains(&sid));
    let notifications = ok(cli(args(&["session", "notifications", "--undeliverable"])).await.unwrap());
    assert!(notifications.starts_with("ID") && notifications.lines().count() == 1, "{notifications}");
    let audit = ok(cli(args(&["audit", "list", "--user", "alice"])).await.unwrap());
    assert!(audit.contains("session_ended"), "{audit}");

    // A client's logout metadata.
    let added = ok(cli(args(&[
        "client",
        "add",
        "--name",
        "Logout app",
        "--id",
        "logout-app",
        "--redirect-uri",
        "https://rp.example/cb",
        "--post-logout-redirect-uri",
        "https://rp.example/bye",
        "--post-logout-redirect-uri",
        "https://rp.example/bye2",
        "--frontchannel-logout-uri",
        "https://rp.example/fc?x=1",
        "--frontchannel-logout-session-required",
        "--backchannel-logout-uri",
        "https://rp.example/bc",
    ]))
    .await
    .unwrap());
    assert!(added.contains("client_id: logout-app"), "{added}");
    let shown = ok(cli(args(&["client", "show", "logout-app"])).await.unwrap());
    for expected in [
        "post_logout_redirect_uris: https://rp.example/bye2",
        "frontchannel_logout_uri: https://rp.example/fc?x=1\nfrontchannel_logout_session_required: true",
        "backchannel_logout_uri: https://rp.example/bc",
    ] {
        assert!(shown.contains(expected), "{expected:?} not in\n{shown}");
    }
    let plain_http = args(&[
        "client",
        "add",
        "--name",
        "x",
        "--redirect-uri",
        "https://rp.example/cb",
        "--backchannel-logout-uri",
        "http://rp.example/bc",
    ]);
    misused(cli(plain_http).await.unwrap(), "must be an https URL");
    let fragment = args(&[
        "client",
        "add",
        "--name",
        "x",
        "--redirect-uri",
        "https://rp.example/cb",
        "--post-logout-redirect-uri",
        "https://rp.example/bye#x",
    ]);
    misused(cli(fragment).await.unwrap(), "fragment");
}

#[test]
fn initial_access_tokens_are_made_listed_and_revoked_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = &common::test_database_url_blocking(dir.path());
    ok(oxid(d, &["migrate"], None));
    let out = ok(oxid(d, &["registration", "token", "create", "--expires", "3600", "--uses", "2"], None));
    let token = value_of(&out, "initial_access_token");
    let id = value_of(&out, "id");
    assert_eq!(token.len(), 43);
    ok(oxid(d, &["registration", "token", "create"], None));
    let listed = ok(oxid(d, &["registration", "token", "list"], None));
    let row = listed.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("{id} not in\n{listed}"));
    assert!(row.trim_end().ends_with('2'), "two uses left: {row}");
    assert!(listed.contains("never") && listed.contains("unlimited"), "{listed}");
    assert!(!listed.contains(&token), "the token itself is never shown again");
    misused(oxid(d, &["registration", "token", "create", "--uses", "0"], None), "at least 1");
    ok(oxid(d, &["registration", "token", "revoke", &id], None));
    refused(oxid(d, &["registration", "token", "revoke", &id], None), "no initial access token");
    assert!(!ok(oxid(d, &["registration", "token", "list"], None)).contains(&id));
}

#[test]
fn clients_of_the_newer_grants_are_added_by_their_rfc_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = &common::test_database_url_blocking(dir.path());
    ok(oxid(d, &["migrate"], None));
    let device = ["client", "add", "--name", "TV", "--public", "--id", "tv"];
    ok(oxid(d, &[&device[..], &["--grant-type", "urn:ietf:params:oauth:grant-type:device_code"]].concat(), None));
    let shown = ok(oxid(d, &["client", "show", "tv"], None));
    assert!(shown.contains("grant_types: urn:ietf:params:oauth:grant-type:device_code"), "{shown}");
    let ciba = ["client", "add", "--name", "Desk", "--id", "desk", "--grant-type", "urn:openid:params:grant-type:ciba"];
    misused(oxid(d, &ciba, None), "backchannel_token_delivery_mode: is required");
    misused(oxid(d, &[&ciba[..], &["--ciba-mode", "ping"]].concat(), None), "backchannel_client_notification_endpoint");
    ok(oxid(d, &[&ciba[..], &["--ciba-mode", "poll", "--require-dpop", "--require-par"]].concat(), None));
    let shown = ok(oxid(d, &["client", "show", "desk"], None));
    for expected in [
        "backchannel_token_delivery_mode: poll",
        "dpop_bound_access_tokens: true",
        "require_pushed_authorization_requests: true",
    ] {
        assert!(shown.contains(expected), "{expected} not in\n{shown}");
    }
}

#[test]
fn resource_servers_are_managed_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = &common::test_database_url_blocking(dir.path());
    ok(oxid(d, &["migrate"], None));
    let add = ["resource", "add", "--identifier", "https://api.example.com", "--name", "API", "--scope", "api.read"];
    let out = ok(oxid(d, &[&add[..], &["--token-format", "jwt", "--with-secret"]].concat(), None));
    assert_eq!(value_of(&out, "resource"), "https://api.example.com");
    assert!(value_of(&out, "introspection_secret").len() >= 32);
    refused(oxid(d, &add, None), "already exists");
    misused(oxid(d, &["resource", "add", "--identifier", "api"], None), "absolute URI");
    misused(
        oxid(d, &["resource", "add", "--identifier", "https://x.example", "--token-format", "xml"], None),
        "--token-format",
    );
    assert!(ok(oxid(d, &["resource", "list"], None)).contains("https://api.example.com  jwt"));
    let shown = ok(oxid(d, &["resource", "show", "https://api.example.com"], None));
    assert!(shown.contains("scopes: api.read") && shown.contains("introspects: with a secret"), "{shown}");
    assert!(shown.contains("alg: RS256"), "{shown}");
    ok(oxid(d, &["resource", "delete", "https://api.example.com"], None));
    refused(oxid(d, &["resource", "show", "https://api.example.com"], None), "no resource server");
}
