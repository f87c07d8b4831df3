//! Reading an OP's login and consent forms the way a person fills them in, so that `--issuer` can
//! drive any OP: the form with a password field (else the first POST form), its hidden fields as they
//! are, the password field with the password, the other text field with the username, and the
//! approving button of a consent form.
//!
//! Written by hand rather than with an HTML parser crate: the pages are the OP's own, well-formed
//! forms, and a full HTML5 parser would be most of this tool's build time.

use anyhow::Context;

/// Values of named submit buttons that approve.
const APPROVING: [&str; 6] = ["allow", "approve", "accept", "yes", "continue", "consent"];

/// One tag's name (lowercase) and attributes (names lowercase, values unescaped).
struct Tag {
    name: String,
    attributes: Vec<(String, String)>,
}

impl Tag {
    fn get(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The tags of `html`, in order (text, comments and closing tags skipped).
fn tags(html: &str) -> Vec<Tag> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        if rest.starts_with("!--") {
            rest = rest.find("-->").map_or("", |end| &rest[end + 3..]);
            continue;
        }
        let name_len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '/')).unwrap_or(rest.len());
        let name = rest[..name_len].to_ascii_lowercase();
        rest = &rest[name_len..];
        let mut attributes = Vec::new();
        loop {
            rest = rest.trim_start();
            if rest.is_empty() || rest.starts_with('>') || rest.starts_with("/>") {
                break;
            }
            let end = rest.find(|c: char| c == '=' || c == '>' || c == '/' || c.is_whitespace()).unwrap_or(rest.len());
            let attribute = rest[..end].to_ascii_lowercase();
            rest = rest[end..].trim_start();
            let value = if let Some(after) = rest.strip_prefix('=') {
                let after = after.trim_start();
                let (value, remaining) = match after.chars().next() {
                    Some(q @ ('"' | '\'')) => {
                        let close = after[1..].find(q).map_or(after.len(), |i| i + 1);
                        (&after[1..close], after.get(close + 1..).unwrap_or(""))
                    }
                    _ => {
                        let end = after.find(|c: char| c == '>' || c.is_whitespace()).unwrap_or(after.len());
                        (&after[..end], &after[end..])
                    }
                };
                rest = remaining;
                unescape(value)
            } else {
                if end == 0 {
                    rest = &rest[1..]; // a stray '/' inside the tag
                }
                String::new()
            };
            if !attribute.is_empty() {
                attributes.push((attribute, value));
            }
        }
        if !name.starts_with('/') && !name.is_empty() {
            out.push(Tag { name, attributes });
        }
    }
    out
}

/// Decodes the character references pages use in attribute values.
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';').filter(|&i| i <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "lt" => Some('<'),
            "gt" => Some('>'),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The form to submit on `html` and its fields, filled in: `(action, fields)`.
pub fn fill(html: &str, username: &str, password: &str) -> anyhow::Result<(String, Vec<(String, String)>)> {
    let tags = tags(html);
    // Forms as tag ranges: a form's fields are the tags up to the next form.
    let starts: Vec<usize> = tags.iter().enumerate().filter(|(_, t)| t.name == "form").map(|(i, _)| i).collect();
    let forms: Vec<&[Tag]> = starts
        .iter()
        .enumerate()
        .map(|(n, &start)| &tags[start..starts.get(n + 1).copied().unwrap_or(tags.len())])
        .filter(|form| form[0].get("method").is_some_and(|m| m.eq_ignore_ascii_case("post")))
        .collect();
    let has_password = |form: &&&[Tag]| form.iter().any(|t| t.name == "input" && t.get("type") == Some("password"));
    let form = forms.iter().find(has_password).or(forms.first()).context("no form to submit on the page")?;
    let action = form[0].get("action").filter(|a| !a.is_empty()).context("a form without an action")?.to_owned();
    let mut fields = Vec::new();
    let mut buttons = Vec::new();
    for tag in &form[1..] {
        let Some(name) = tag.get("name") else { continue };
        let value = tag.get("value").unwrap_or("");
        match (tag.name.as_str(), tag.get("type").unwrap_or("text").to_ascii_lowercase().as_str()) {
            ("input", "hidden") => fields.push((name.to_owned(), value.to_owned())),
            ("input", "password") => fields.push((name.to_owned(), password.to_owned())),
            ("input", "text" | "email") => {
                let filled = if value.is_empty() { username } else { value };
                fields.push((name.to_owned(), filled.to_owned()));
            }
            ("input", "checkbox" | "radio") if tag.get("checked").is_some() => {
                fields.push((name.to_owned(), if value.is_empty() { "on" } else { value }.to_owned()));
            }
            ("input", "submit") | ("button", "submit") => buttons.push((name.to_owned(), value.to_owned())),
            _ => {}
        }
    }
    if let Some(button) =
        buttons.iter().find(|(_, value)| APPROVING.contains(&value.to_ascii_lowercase().as_str())).or(buttons.first())
    {
        fields.push(button.clone());
    }
    Ok((action, fields))
}

#[cfg(test)]
mod tests {
    use super::fill;

    #[test]
    fn a_login_form_is_filled_in() {
        let page = r#"<form method="get" action="/lang"><select name="l"></select></form>
            <form method="post" action="&#x2f;login"><input type="hidden" name="csrf" value="a&amp;b">
            <input name="username" autofocus><input type="password" name="password" required/>
            <button type="submit">Sign in</button></form>"#;
        let (action, fields) = fill(page, "bench", "pw").unwrap();
        assert_eq!(action, "/login");
        let expected = [("csrf", "a&b"), ("username", "bench"), ("password", "pw")];
        assert_eq!(fields, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));
    }

    #[test]
    fn a_consent_form_is_approved() {
        let page = r#"<form method='post' action='/consent'><input type=hidden name=request value=r1>
            <button type="submit" name="decision" value="deny">No</button>
            <button type="submit" name="decision" value="allow">Yes</button></form>"#;
        let (action, fields) = fill(page, "bench", "pw").unwrap();
        assert_eq!(action, "/consent");
        let expected = [("request", "r1"), ("decision", "allow")];
        assert_eq!(fields, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));
        assert!(fill("<p>no form</p>", "u", "p").is_err());
    }
}
