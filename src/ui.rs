//! Server-rendered pages: minijinja templates, built in and overridable from a theme directory.

use std::path::Path;

use minijinja::{Environment, Value};

const BUILT_IN: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("consent.html", include_str!("../templates/consent.html")),
    ("signup.html", include_str!("../templates/signup.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("form_post.html", include_str!("../templates/form_post.html")),
];

pub const STYLESHEET: &str = include_str!("../assets/oxid.css");

pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    /// Loads the built-in templates, replaced by same-named files in `theme_dir` where present.
    pub fn load(theme_dir: Option<&Path>) -> Result<Self, String> {
        let mut env = Environment::new();
        for (name, source) in BUILT_IN {
            let source = match theme_dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
                Some(path) => std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?,
                None => (*source).to_owned(),
            };
            env.add_template_owned(*name, source).map_err(|e| format!("template {name}: {e}"))?;
        }
        Ok(Self { env })
    }

    pub fn render(&self, name: &str, ctx: Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }
}

/// The words a consent page uses for a scope (Core 5.4).
pub fn describe_scope(scope: &str) -> Option<&'static str> {
    Some(match scope {
        "openid" => "Sign you in with your account",
        "profile" => "See your name and username",
        "email" => "See your email address",
        "address" => "See your postal address",
        "phone" => "See your phone number",
        "offline_access" => "Stay connected when you are not using it",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_escape_user_input() {
        let pages = Pages::load(None).unwrap();
        let html = pages
            .render(
                "error.html",
                minijinja::context! { error => "invalid_request", description => "<script>x</script>" },
            )
            .unwrap();
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
    }
}
