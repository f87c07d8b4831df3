//! Server-rendered pages: minijinja templates and message catalogues, built in and overridable from a
//! theme directory, and the choice of language for a request (`ui_locales`, then `Accept-Language`).

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::{Environment, Value};

const BUILT_IN: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("consent.html", include_str!("../templates/consent.html")),
    ("signup.html", include_str!("../templates/signup.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("form_post.html", include_str!("../templates/form_post.html")),
    ("logout_confirm.html", include_str!("../templates/logout_confirm.html")),
    ("logged_out.html", include_str!("../templates/logged_out.html")),
    ("select_account.html", include_str!("../templates/select_account.html")),
    ("account.html", include_str!("../templates/account.html")),
    ("device.html", include_str!("../templates/device.html")),
    ("second_factor.html", include_str!("../templates/second_factor.html")),
    ("totp_setup.html", include_str!("../templates/totp_setup.html")),
    ("recovery_codes.html", include_str!("../templates/recovery_codes.html")),
    ("password_forgot.html", include_str!("../templates/password_forgot.html")),
    ("password_reset.html", include_str!("../templates/password_reset.html")),
    ("email_verify.html", include_str!("../templates/email_verify.html")),
    ("passkey_setup.html", include_str!("../templates/passkey_setup.html")),
    // Mail: plain text (no HTML escaping, by the file name).
    ("mail_password_reset.txt", include_str!("../templates/mail_password_reset.txt")),
    ("mail_email_verification.txt", include_str!("../templates/mail_email_verification.txt")),
];

/// The built-in catalogues; English is the default and the reference every other must match.
const BUILT_IN_LOCALES: &[(&str, &str)] =
    &[("en", include_str!("../locales/en.toml")), ("de", include_str!("../locales/de.toml"))];

pub const STYLESHEET: &str = include_str!("../assets/oxid.css");
/// The one script of the OP's pages: WebAuthn ceremonies (passkeys).
pub const PASSKEY_SCRIPT: &str = include_str!("../assets/passkeys.js");

/// One language's texts, as templates see them (`t.sign_in`) and as handlers look them up.
pub struct Locale {
    pub tag: String,
    messages: BTreeMap<String, String>,
    value: Value,
}

impl Locale {
    fn new(tag: &str, source: &str) -> Result<Self, String> {
        let messages: BTreeMap<String, String> = toml::from_str(source).map_err(|e| format!("locale {tag}: {e}"))?;
        Ok(Self { tag: tag.to_owned(), value: Value::from(messages.clone()), messages })
    }

    /// The catalogue, for a template context.
    pub fn messages(&self) -> Value {
        self.value.clone()
    }

    /// The text for `key` (every catalogue has every key; a missing one shows the key).
    pub fn text<'a>(&'a self, key: &'a str) -> &'a str {
        self.messages.get(key).map_or(key, String::as_str)
    }
}

pub struct Pages {
    env: Environment<'static>,
    /// The first is the default.
    locales: Vec<Locale>,
}

impl Pages {
    /// Loads the built-in templates and catalogues, replaced by same-named files in `theme_dir` where
    /// present (`<theme_dir>/locales/<tag>.toml` also adds languages).
    pub fn load(theme_dir: Option<&Path>) -> Result<Self, String> {
        let mut env = Environment::new();
        for (name, source) in BUILT_IN {
            let source = match theme_dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
                Some(path) => std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?,
                None => (*source).to_owned(),
            };
            env.add_template_owned(*name, source).map_err(|e| format!("template {name}: {e}"))?;
        }
        let mut sources: BTreeMap<String, String> =
            BUILT_IN_LOCALES.iter().map(|(tag, source)| (tag.to_string(), source.to_string())).collect();
        if let Some(dir) = theme_dir.map(|d| d.join("locales")).filter(|d| d.is_dir()) {
            for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
                let path = entry.map_err(|e| e.to_string())?.path();
                if path.extension().is_some_and(|e| e == "toml") {
                    let tag = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_lowercase();
                    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                    sources.insert(tag, text);
                }
            }
        }
        let english = Locale::new("en", &sources.remove("en").expect("English is built in"))?;
        let mut locales = vec![english];
        for (tag, source) in sources {
            let locale = Locale::new(&tag, &source)?;
            if let Some(missing) = locales[0].messages.keys().find(|k| !locale.messages.contains_key(*k)) {
                return Err(format!("locale {tag} has no text for {missing}"));
            }
            locales.push(locale);
        }
        Ok(Self { env, locales })
    }

    pub fn render(&self, name: &str, ctx: Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }

    pub fn default_locale(&self) -> &Locale {
        &self.locales[0]
    }

    /// The language to show: the first of `ui_locales` (Core 3.1.2.1, in order of preference), then of
    /// `Accept-Language` (highest quality first), that a catalogue exists for, by full tag or by its
    /// primary language; English otherwise.
    pub fn locale(&self, ui_locales: Option<&str>, accept_language: Option<&str>) -> &Locale {
        let requested = ui_locales.unwrap_or_default().split(' ').filter(|t| !t.is_empty());
        let mut accepted: Vec<(f32, &str)> = accept_language
            .unwrap_or_default()
            .split(',')
            .filter_map(|item| {
                let mut parts = item.split(';');
                let tag = parts.next()?.trim();
                let q = parts.find_map(|p| p.trim().strip_prefix("q=")).map_or(Some(1.0), |q| q.parse().ok())?;
                (!tag.is_empty() && tag != "*" && q > 0.0).then_some((q, tag))
            })
            .collect();
        accepted.sort_by(|a, b| b.0.total_cmp(&a.0));
        for tag in requested.chain(accepted.into_iter().map(|(_, tag)| tag)) {
            let tag = tag.to_lowercase();
            let primary = tag.split('-').next().unwrap_or_default();
            if let Some(locale) = self.locales.iter().find(|l| l.tag == tag || l.tag == primary) {
                return locale;
            }
        }
        self.default_locale()
    }

    /// The language tags there are catalogues for (Discovery `ui_locales_supported`).
    pub fn tags(&self) -> Vec<String> {
        self.locales.iter().map(|l| l.tag.clone()).collect()
    }
}

/// The catalogue key for the words a consent page uses for a scope (Core 5.4).
/// Where a scope goes on the consent page: signing in first, then what the user is (profile) and how to
/// reach them, custom scopes, and staying connected last.
pub fn consent_order(scope: &str) -> u8 {
    match scope {
        "openid" => 0,
        "profile" => 1,
        "email" => 2,
        "phone" => 3,
        "address" => 4,
        "offline_access" => 6,
        _ => 5,
    }
}

pub fn scope_message(scope: &str) -> Option<&'static str> {
    Some(match scope {
        "openid" => "scope_openid",
        "profile" => "scope_profile",
        "email" => "scope_email",
        "address" => "scope_address",
        "phone" => "scope_phone",
        "offline_access" => "scope_offline_access",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_escape_user_input() {
        let pages = Pages::load(None).unwrap();
        let t = pages.default_locale().messages();
        let html = pages
            .render(
                "error.html",
                minijinja::context! { error => "invalid_request", description => "<script>x</script>", t },
            )
            .unwrap();
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
    }

    #[test]
    fn every_catalogue_has_every_text() {
        // Pages::load refuses a catalogue with a missing key; the built-in ones must load.
        let pages = Pages::load(None).unwrap();
        assert_eq!(pages.tags(), ["en", "de"]);
        let de = pages.locale(Some("de"), None);
        assert!(pages.default_locale().messages.keys().all(|k| de.messages.contains_key(k)));
        assert!(de.messages.keys().all(|k| pages.default_locale().messages.contains_key(k)), "no stray keys");
    }

    #[test]
    fn language_negotiation() {
        let pages = Pages::load(None).unwrap();
        assert_eq!(pages.locale(Some("fr-CA de-AT en"), None).tag, "de", "ui_locales in order, by primary tag");
        assert_eq!(pages.locale(None, Some("fr;q=0.9, de;q=0.8, en;q=0.1")).tag, "de");
        assert_eq!(pages.locale(None, Some("en;q=0.5, de")).tag, "de", "by quality");
        assert_eq!(pages.locale(Some("ja"), Some("de")).tag, "de", "Accept-Language when ui_locales has none");
        assert_eq!(pages.locale(Some("ja"), Some("xx, *")).tag, "en");
        assert_eq!(pages.locale(None, Some("de;q=0")).tag, "en", "q=0 means not acceptable");
    }
}
