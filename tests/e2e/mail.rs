//! Issue 13: password reset and email verification by mailed links. The OP sends through a real SMTP
//! server (Debian's aiosmtpd, writing what it receives to a Maildir), and the test follows the links
//! it finds in the mail.

use std::time::{Duration, Instant};

use crate::common;

use common::{Browser, PASSWORD, Page, TestOp, query};
use oxid::model::ClientAuthMethod;

const NEW_PASSWORD: &str = "a new password, from the mail";

/// An SMTP server on loopback that keeps every message in a Maildir.
struct MailSink {
    port: u16,
    dir: tempfile::TempDir,
    server: std::process::Child,
}

struct Mail {
    subject: String,
    body: String,
}

impl MailSink {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        // Debian's Python, where the python3-aiosmtpd package puts its module.
        let server = std::process::Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("maildir"))
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("aiosmtpd runs (scripts/install-deps installs python3-aiosmtpd)");
        let sink = Self { port, dir, server };
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "the SMTP server did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sink
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The messages received so far for `to`, oldest first.
    fn received(&self, to: &str) -> Vec<Mail> {
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("maildir/new")) else { return Vec::new() };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap());
        files.iter().map(|p| std::fs::read_to_string(p).unwrap()).filter_map(|text| parse(&text, to)).collect()
    }

    /// Waits for the `n`th message (from 1) to `to`.
    async fn nth(&self, to: &str, n: usize) -> Mail {
        let started = Instant::now();
        loop {
            if let Some(mail) = self.received(to).into_iter().nth(n - 1) {
                return mail;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "no message {n} to {to}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// The message in `text` if it was for `to`: its subject and its decoded text.
fn parse(text: &str, to: &str) -> Option<Mail> {
    let text = text.replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n")?;
    let header = |name: &str| {
        head.lines().find_map(|l| l.split_once(": ").filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v))
    };
    if header("X-RcptTo")? != to {
        return None;
    }
    let body = match header("Content-Transfer-Encoding").unwrap_or("7bit") {
        "quoted-printable" => {
            String::from_utf8(quoted_printable::decode(body.as_bytes(), quoted_printable::ParseMode::Robust).unwrap())
                .unwrap()
        }
        "7bit" | "8bit" => body.to_owned(),
        other => panic!("unexpected transfer encoding {other}"),
    };
    Some(Mail { subject: header("Subject")?.to_owned(), body })
}

/// The link to `path` in a mail's text.
fn link(mail: &Mail, path: &str) -> String {
    let start = mail.body.find(path).unwrap_or_else(|| panic!("no link to {path} in:\n{}", mail.body));
    let from = mail.body[..start].rfind("http").unwrap();
    mail.body[from..].split_whitespace().next().unwrap().to_owned()
}

async fn forgot(b: &Browser, account: &str) -> Page {
    let form = b.get("/password/forgot").await;
    assert_eq!(form.status, 200, "{}", form.body);
    b.post("/password/forgot", &[("csrf_token", &form.hidden("csrf_token")), ("account", account)]).await
}

async fn reset(b: &Browser, link: &str, new: &str, repeated: &str) -> Page {
    let form = b.get(link).await;
    assert_eq!(form.status, 200, "{}", form.body);
    let fields = [
        ("csrf_token", form.hidden("csrf_token")),
        ("token", form.hidden("token")),
        ("new_password", new.into()),
        ("new_password_repeat", repeated.into()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    b.post("/password/reset", &fields).await
}

/// Signs in on the account page; whether the password was right.
async fn account_login(b: &Browser, username: &str, password: &str) -> bool {
    let page = b.get("/account").await;
    let form =
        [("csrf_token", page.hidden("csrf_token")), ("username", username.into()), ("password", password.into())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    b.post("/account/login", &form).await.status.is_redirection()
}

#[tokio::test]
async fn a_forgotten_password_is_reset_with_a_mailed_link() {
    let sink = MailSink::start().await;
    let op = TestOp::start_with(|c| c.smtp_url = Some(sink.url())).await;
    op.add_user("alice").await;
    op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;

    // A session from before the reset.
    let earlier = Browser::new(&op);
    assert!(account_login(&earlier, "alice", PASSWORD).await);

    let b = Browser::new(&op);
    let login = b.follow(b.get(&op.authorize_url("webapp", "")).await).await;
    assert!(login.body.contains("href=\"/password/forgot\""), "the login page links to the reset: {}", login.body);

    // The same answer for an address we know and for one we don't.
    let known = forgot(&b, "alice@example.com").await;
    let unknown = forgot(&b, "nobody@example.com").await;
    assert_eq!((known.status, unknown.status), (reqwest::StatusCode::OK, reqwest::StatusCode::OK));
    assert!(known.body.contains("a link is on its way"), "{}", known.body);
    assert_eq!(known.body, unknown.body, "the answer tells nothing");

    let mail = sink.nth("alice@example.com", 1).await;
    assert_eq!(mail.subject, "Reset your password");
    assert!(mail.body.contains("Hello alice") && mail.body.contains("30 minutes"), "{}", mail.body);
    let url = link(&mail, "/password/reset?token=");
    assert!(url.starts_with(&op.issuer), "{url}");

    // The new password must be typed twice alike and be long enough; the link survives a mistake.
    let mismatch = reset(&b, &url, NEW_PASSWORD, "something else").await;
    assert_eq!(mismatch.status, 400);
    assert!(mismatch.body.contains("The passwords do not match."));
    let done = reset(&b, &url, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Your password has been changed."));

    // The old password is gone, the new one works, and the earlier session has ended.
    assert!(!account_login(&Browser::new(&op), "alice", PASSWORD).await);
    assert!(account_login(&Browser::new(&op), "alice", NEW_PASSWORD).await);
    assert!(earlier.get("/account").await.body.contains("name=\"password\""), "the old session was ended");

    // A link works once.
    let again = b.get(&url).await;
    assert_eq!(again.status, 400);
    assert!(again.body.contains("This link has already been used."), "{}", again.body);
    // Altered or foreign links are refused; so is a form without the page's CSRF token.
    let tampered = url.replace("token=", "token=x");
    assert!(b.get(&tampered).await.body.contains("This link is not valid."));
    let forged =
        b.post("/password/reset", &[("token", "x"), ("new_password", "p"), ("new_password_repeat", "p")]).await;
    assert_eq!(forged.status, 400);

    // Nothing went to the unknown address; a second link expires after 30 minutes.
    forgot(&b, "alice").await;
    let late = link(&sink.nth("alice@example.com", 2).await, "/password/reset?token=");
    assert!(sink.received("nobody@example.com").is_empty());
    op.advance_clock(30 * 60 + 1);
    let expired = b.get(&late).await;
    assert_eq!(expired.status, 400);
    assert!(expired.body.contains("This link has expired."), "{}", expired.body);
}

#[tokio::test]
async fn email_addresses_are_verified_with_a_mailed_link() {
    let sink = MailSink::start().await;
    let op = TestOp::start_with(|c| {
        c.smtp_url = Some(sink.url());
        c.mail_max_per_address = 2;
    })
    .await;
    op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;

    // Sign-up mails the new address a link.
    let b = Browser::new(&op);
    let page = b.follow(b.get(&op.authorize_url("webapp", "&prompt=create")).await).await;
    let fields = [
        ("request", page.hidden("request")),
        ("csrf_token", page.hidden("csrf_token")),
        ("username", "carol".into()),
        ("email", "carol@example.com".into()),
        ("password", NEW_PASSWORD.into()),
        ("password_confirm", NEW_PASSWORD.into()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let callback = b.follow(b.post("/signup", &fields).await).await.location.unwrap();
    assert!(query(&callback).contains_key("code"));
    let verified = async || op.store.user_by_username("carol").await.unwrap().unwrap().email_verified;
    assert!(!verified().await);

    let mail = sink.nth("carol@example.com", 1).await;
    assert_eq!(mail.subject, "Verify your email address");
    let url = link(&mail, "/email/verify?token=");
    // Opening the link (as a mail scanner would) verifies nothing; the button does.
    let confirm = b.get(&url).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(!verified().await);
    let done = b
        .post("/email/verify", &[("csrf_token", &confirm.hidden("csrf_token")), ("token", &confirm.hidden("token"))])
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Your email address is verified."));
    assert!(verified().await);
    let spent = b
        .post("/email/verify", &[("csrf_token", &confirm.hidden("csrf_token")), ("token", &confirm.hidden("token"))])
        .await;
    assert_eq!(spent.status, 400, "a link works once");

    // From the account page: an unverified address gets a link on request, within its allowance (two
    // mails per window: the sign-up's and this one).
    let now = oxid::model::now();
    let dave = oxid::model::User {
        id: "sub-dave".into(),
        username: "dave".into(),
        password_hash: oxid::password::hash(PASSWORD.into()).await.unwrap(),
        email: Some("dave@example.com".into()),
        email_verified: false,
        created_at: now,
        updated_at: now,
        ..Default::default()
    };
    op.store.insert_user(&dave).await.unwrap();
    let d = Browser::new(&op);
    assert!(account_login(&d, "dave", PASSWORD).await);
    let account = d.get("/account").await;
    assert!(account.body.contains("Not verified yet.") && account.body.contains("Send a verification link"));
    let csrf = account.hidden("csrf_token");
    for (n, outcome) in [(1, "sent"), (2, "sent"), (3, "not-sent")] {
        let asked = d.post("/account/email/verify", &[("csrf_token", &csrf)]).await;
        assert_eq!(asked.location.as_deref(), Some(format!("/account?verification={outcome}").as_str()), "request {n}");
    }
    assert!(d.get("/account?verification=sent").await.body.contains("A verification link is on its way."));
    let url = link(&sink.nth("dave@example.com", 2).await, "/email/verify?token=");
    assert_eq!(sink.received("dave@example.com").len(), 2);
    let confirm = d.get(&url).await;
    d.post("/email/verify", &[("csrf_token", &confirm.hidden("csrf_token")), ("token", &confirm.hidden("token"))])
        .await;
    assert!(op.store.user_by_username("dave").await.unwrap().unwrap().email_verified);
    assert!(d.get("/account").await.body.contains("Verified."));
}

#[tokio::test]
async fn requests_are_bounded_per_address_and_the_pages_are_off_without_smtp() {
    let sink = MailSink::start().await;
    let op = TestOp::start_with(|c| {
        c.smtp_url = Some(sink.url());
        c.mail_max_per_ip = 3;
        c.mail_max_per_address = 2;
    })
    .await;
    op.add_user("alice").await;
    let b = Browser::new(&op);
    for _ in 0..3 {
        assert_eq!(forgot(&b, "alice").await.status, 200);
    }
    // Two went to the address; the third request was answered alike but sent nothing.
    sink.nth("alice@example.com", 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.received("alice@example.com").len(), 2);
    let throttled = forgot(&b, "alice").await;
    assert_eq!(throttled.status, 429, "the fourth from one client IP");
    assert!(throttled.body.contains("Too many requests"));
    let empty = b.post("/password/forgot", &[("csrf_token", &throttled.hidden("csrf_token")), ("account", "")]).await;
    assert_eq!(empty.status, 400);

    // Without smtp_url: no link on the login page, and the pages say why they are off.
    let plain = TestOp::start().await;
    plain.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    let p = Browser::new(&plain);
    let login = p.follow(p.get(&plain.authorize_url("webapp", "")).await).await;
    assert!(!login.body.contains("/password/forgot"));
    for path in ["/password/forgot", "/password/reset?token=x", "/email/verify?token=x"] {
        let page = p.get(path).await;
        assert_eq!(page.status, 400, "{path}");
        assert!(page.body.contains("This server sends no email"), "{path}: {}", page.body);
    }
}
