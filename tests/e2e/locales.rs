//! Pages in the user's language (Core 3.1.2.1 `ui_locales`, then `Accept-Language`), from message
//! catalogues in files (English and German built in, more from the theme directory), and `display`.

use crate::common;

use common::{Browser, PASSWORD, TestOp, json};
use oxid::model::ClientAuthMethod;

async fn setup(adjust: impl FnOnce(&mut oxid::config::Config)) -> TestOp {
    let op = TestOp::start_with(adjust).await;
    op.add_user("alice").await;
    op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    op
}

#[tokio::test]
async fn ui_locales_chooses_the_language_of_every_page() {
    let op = setup(|_| {}).await;
    let b = Browser::new(&op);
    let login = b.follow(b.get(&op.authorize_url("webapp", "&ui_locales=fr-CA%20de")).await).await;
    assert!(login.body.contains("<html lang=\"de\">"), "{}", login.body);
    assert!(login.body.contains("Benutzername") && login.body.contains(">Anmelden</button>"), "{}", login.body);
    let wrong = b.submit_login(&login, "alice", "wrong password").await;
    assert!(wrong.body.contains("Benutzername oder Passwort ist falsch."), "{}", wrong.body);
    let consent = b.follow(b.submit_login(&login, "alice", PASSWORD).await).await;
    assert!(consent.body.contains("Zugriff erlauben?") && consent.body.contains("Ihre E-Mail-Adresse sehen"));
    assert!(consent.body.contains(">Erlauben</button>"), "{}", consent.body);

    // Without ui_locales, the browser's Accept-Language decides; English when nothing matches.
    let url = op.authorize_url("webapp", "");
    let german = reqwest::Client::builder().redirect(reqwest::redirect::Policy::limited(5)).build().unwrap();
    let page = german.get(&url).header("accept-language", "fr;q=0.9, de;q=0.8").send().await.unwrap();
    assert!(page.text().await.unwrap().contains("Benutzername"));
    let page = german.get(&url).header("accept-language", "ja").send().await.unwrap();
    assert!(page.text().await.unwrap().contains("Username"));

    let (_, doc) = json(reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap()).await;
    assert_eq!(doc["ui_locales_supported"], serde_json::json!(["en", "de"]));
}

#[tokio::test]
async fn the_theme_directory_adds_languages() {
    let theme = tempfile::tempdir().unwrap();
    std::fs::create_dir(theme.path().join("locales")).unwrap();
    let french = include_str!("../../locales/en.toml").replace("\"Sign in\"", "\"Se connecter\"");
    std::fs::write(theme.path().join("locales/fr.toml"), french).unwrap();
    let dir = theme.path().to_owned();
    let op = setup(move |c| c.templates_dir = Some(dir)).await;
    let b = Browser::new(&op);
    let login = b.follow(b.get(&op.authorize_url("webapp", "&ui_locales=fr")).await).await;
    assert!(login.body.contains(">Se connecter</button>"), "{}", login.body);

    // A catalogue missing a text is refused at start, naming what is missing.
    std::fs::write(theme.path().join("locales/it.toml"), "sign_in = \"Accedi\"\n").unwrap();
    let err = oxid::ui::Pages::load(Some(theme.path())).err().expect("an incomplete catalogue is an error");
    assert!(err.contains("locale it has no text for"), "{err}");
}

/// Core 3.1.2.1 `display`: the page is laid out for it (unknown values: tests/e2e/authorize_errors.rs).
#[tokio::test]
async fn display_shapes_the_page() {
    let op = setup(|_| {}).await;
    let b = Browser::new(&op);
    let login = b.follow(b.get(&op.authorize_url("webapp", "&display=popup")).await).await;
    assert!(login.body.contains("<body class=\"display-popup\">"), "{}", login.body);
    let login = b.follow(b.get(&op.authorize_url("webapp", "")).await).await;
    assert!(login.body.contains("<body class=\"display-page\">"));
}
