//! The code mail's subject, text and HTML, from templates an operator can replace.
//!
//! Placeholders: `{{product}}`, `{{code}}`, `{{lifetime}}` ("5 minutes").
//! Values are HTML-escaped in the HTML part.

use std::path::Path;
use std::time::Duration;

const DEFAULT_SUBJECT: &str = include_str!("../templates/subject.txt");
const DEFAULT_TEXT: &str = include_str!("../templates/body.txt");
const DEFAULT_HTML: &str = include_str!("../templates/body.html");

/// File names looked up in an operator's template directory.
pub const TEMPLATE_FILES: [&str; 3] = ["subject.txt", "body.txt", "body.html"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templates {
    subject: String,
    text: String,
    html: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("could not read template {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("template {0} does not contain {{{{code}}}}")]
    NoCode(String),
}

impl Default for Templates {
    fn default() -> Self {
        Self {
            subject: DEFAULT_SUBJECT.trim().to_owned(),
            text: DEFAULT_TEXT.to_owned(),
            html: DEFAULT_HTML.to_owned(),
        }
    }
}

impl Templates {
    /// Reads `subject.txt`, `body.txt` and `body.html` from `dir`; a missing
    /// file keeps the built-in default. Both bodies must show the code.
    pub fn load(dir: &Path) -> Result<Self, TemplateError> {
        let mut templates = Self::default();
        let slots = [
            &mut templates.subject,
            &mut templates.text,
            &mut templates.html,
        ];
        for (name, slot) in TEMPLATE_FILES.iter().zip(slots) {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(content) => *slot = content,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(TemplateError::Read {
                        path: path.display().to_string(),
                        source,
                    })
                }
            }
        }
        templates.subject = templates.subject.trim().to_owned();
        for (name, body) in [
            ("body.txt", &templates.text),
            ("body.html", &templates.html),
        ] {
            if !body.contains("{{code}}") {
                return Err(TemplateError::NoCode(name.to_owned()));
            }
        }
        Ok(templates)
    }

    pub fn render(&self, product: &str, code: &str, lifetime: Duration) -> Rendered {
        let lifetime = describe_lifetime(lifetime);
        let html = [
            ("{{product}}", escape_html(product)),
            ("{{code}}", escape_html(code)),
            ("{{lifetime}}", escape_html(&lifetime)),
        ];
        let (subject, text) = self.render_text(product, code, &lifetime);
        Rendered {
            subject,
            text,
            html: fill(&self.html, &html),
        }
    }

    /// The subject and the text part only (what the log mailer prints).
    pub fn render_plain(&self, product: &str, code: &str, lifetime: Duration) -> (String, String) {
        self.render_text(product, code, &describe_lifetime(lifetime))
    }

    fn render_text(&self, product: &str, code: &str, lifetime: &str) -> (String, String) {
        // A subject is one header line, whatever the product name holds.
        let one_line = product.replace(['\r', '\n'], " ");
        let subject = [
            ("{{product}}", one_line.as_str()),
            ("{{code}}", code),
            ("{{lifetime}}", lifetime),
        ];
        let text = [
            ("{{product}}", product),
            ("{{code}}", code),
            ("{{lifetime}}", lifetime),
        ];
        (fill(&self.subject, &subject), fill(&self.text, &text))
    }
}

/// Replaces each placeholder in one pass; a value is never searched for
/// placeholders itself.
fn fill<V: AsRef<str>>(template: &str, values: &[(&str, V)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        match values.iter().find(|(name, _)| tail.starts_with(name)) {
            Some((name, value)) => {
                out.push_str(value.as_ref());
                rest = &tail[name.len()..];
            }
            None => {
                out.push_str("{{");
                rest = &tail[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn describe_lifetime(lifetime: Duration) -> String {
    let secs = lifetime.as_secs();
    let (n, unit) = if secs >= 60 && secs.is_multiple_of(60) {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_templates_show_product_code_and_lifetime_in_both_parts() {
        let r = Templates::default().render("Acme <Sign-in>", "012345", Duration::from_secs(300));
        assert_eq!(r.subject, "012345 is your Acme <Sign-in> code");
        assert!(r.text.contains("012345") && r.text.contains("5 minutes"));
        assert!(r.text.contains("Acme <Sign-in>"));
        assert!(r.html.contains("012345") && r.html.contains("5 minutes"));
        assert!(r.html.contains("Acme &lt;Sign-in&gt;") && !r.html.contains("<Sign-in>"));
    }

    #[test]
    fn lifetimes_read_naturally() {
        assert_eq!(describe_lifetime(Duration::from_secs(60)), "1 minute");
        assert_eq!(describe_lifetime(Duration::from_secs(600)), "10 minutes");
        assert_eq!(describe_lifetime(Duration::from_secs(90)), "90 seconds");
    }

    #[test]
    fn operator_templates_replace_the_defaults_file_by_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("body.txt"), "Code: {{code}}").expect("write");
        let templates = Templates::load(dir.path()).expect("loads");
        let r = templates.render("otpd", "999999", Duration::from_secs(300));
        assert_eq!(r.text, "Code: 999999");
        assert!(r.html.contains("999999") && r.subject.contains("999999"));
    }

    #[test]
    fn a_template_without_the_code_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("body.html"), "<p>hello</p>").expect("write");
        assert!(matches!(
            Templates::load(dir.path()),
            Err(TemplateError::NoCode(_))
        ));
    }

    #[test]
    fn values_are_not_searched_for_placeholders() {
        let r = Templates::default().render("{{code}} Inc {{x", "123456", Duration::from_secs(60));
        assert!(r.text.contains("{{code}} Inc {{x"));
        assert_eq!(r.text.matches("123456").count(), 1);
    }

    #[test]
    fn subject_cannot_break_into_a_new_header() {
        let r = Templates::default().render("x\r\nBcc: a@b.c", "123456", Duration::from_secs(60));
        assert!(!r.subject.contains('\n') && !r.subject.contains('\r'));
    }
}
