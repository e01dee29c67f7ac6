//! [`TemplateRenderer`]: subject, text and HTML templates for every [`MailTemplate`].

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use auth_core::error::AdapterError;
use auth_core::mail::{EmailMessage, MailIntent, MailRenderer, MailTemplate};

/// Values every mail is given.
const COMMON_KEYS: [&str; 4] = ["email", "name", "app_name", "app_url"];

/// Values a template may refer to: the common ones and those the server gives that mail.
fn allowed_keys(template: MailTemplate) -> Vec<&'static str> {
    let extra: &[&'static str] = match template {
        MailTemplate::VerifyEmail | MailTemplate::PasswordReset | MailTemplate::MagicLink => {
            &["link", "expires_in_minutes"]
        }
        MailTemplate::EmailOtp => &["code", "expires_in_minutes"],
        MailTemplate::AccountLocked => &["locked_minutes"],
        MailTemplate::MfaFactorAdded | MailTemplate::MfaFactorRemoved => &["factor"],
        MailTemplate::RecoveryCodeUsed => &["remaining"],
        MailTemplate::PasswordChanged
        | MailTemplate::PasswordWasReset
        | MailTemplate::SignupAttempted
        | MailTemplate::EmailChanged => &[],
    };
    COMMON_KEYS.iter().chain(extra).copied().collect()
}

/// Every value any template may refer to.
fn known_keys() -> BTreeSet<&'static str> {
    MailTemplate::ALL
        .into_iter()
        .flat_map(allowed_keys)
        .collect()
}

/// Sample values used to check each template at construction.
fn sample_value(key: &str) -> &'static str {
    match key {
        "link" => "https://auth.example.com/verify?token=sample&x=1",
        "code" => "123456",
        "expires_in_minutes" => "30",
        "email" => "user@example.com",
        "name" => "Sample User",
        "app_url" => "https://app.example.com",
        _ => "sample",
    }
}

/// The three files of one mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Subject,
    Text,
    Html,
}

impl Part {
    const ALL: [Part; 3] = [Part::Subject, Part::Text, Part::Html];

    fn file_name(self, template: MailTemplate) -> String {
        let suffix = match self {
            Part::Subject => "subject.txt",
            Part::Text => "txt",
            Part::Html => "html",
        };
        format!("{}.{suffix}", template.name())
    }
}

macro_rules! shipped {
    ($name:literal) => {
        [
            include_str!(concat!("../templates/", $name, ".subject.txt")),
            include_str!(concat!("../templates/", $name, ".txt")),
            include_str!(concat!("../templates/", $name, ".html")),
        ]
    };
}

/// The shipped subject, text and HTML template of `template`.
fn shipped(template: MailTemplate) -> [&'static str; 3] {
    match template {
        MailTemplate::VerifyEmail => shipped!("verify_email"),
        MailTemplate::PasswordReset => shipped!("password_reset"),
        MailTemplate::MagicLink => shipped!("magic_link"),
        MailTemplate::EmailOtp => shipped!("email_otp"),
        MailTemplate::PasswordChanged => shipped!("password_changed"),
        MailTemplate::PasswordWasReset => shipped!("password_was_reset"),
        MailTemplate::SignupAttempted => shipped!("signup_attempted"),
        MailTemplate::AccountLocked => shipped!("account_locked"),
        MailTemplate::MfaFactorAdded => shipped!("mfa_factor_added"),
        MailTemplate::MfaFactorRemoved => shipped!("mfa_factor_removed"),
        MailTemplate::RecoveryCodeUsed => shipped!("recovery_code_used"),
        MailTemplate::EmailChanged => shipped!("email_changed"),
    }
}

/// A piece of a parsed template.
#[derive(Debug, Clone)]
enum Segment {
    /// Template text, copied as is.
    Literal(String),
    /// `{{key}}` or `{{key|fallback}}`: the value, or the fallback text when it is empty.
    Value {
        key: String,
        fallback: Option<String>,
    },
}

/// A parsed template file.
#[derive(Debug, Clone)]
struct Compiled {
    segments: Vec<Segment>,
}

impl Compiled {
    /// Parses `source`; `origin` names the file in errors.
    fn parse(source: &str, origin: &str) -> Result<Self, String> {
        let mut segments = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                segments.push(Segment::Literal(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                return Err(format!("mail template {origin}: \"{{{{\" is never closed"));
            };
            let inner = &after[..end];
            let (key, fallback) = match inner.split_once('|') {
                Some((key, fallback)) => (key.trim(), Some(fallback.trim().to_owned())),
                None => (inner.trim(), None),
            };
            let well_formed = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !well_formed {
                return Err(format!(
                    "mail template {origin}: malformed placeholder {{{{{inner}}}}}"
                ));
            }
            segments.push(Segment::Value {
                key: key.to_owned(),
                fallback,
            });
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Literal(rest.to_owned()));
        }
        Ok(Self { segments })
    }

    fn keys(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Value { key, .. } => Some(key.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// Substitutes values, each passed through `escape`. Fallback text is template text
    /// and is not escaped.
    fn render(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
        escape: Escape,
    ) -> Result<String, String> {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Value { key, fallback } => {
                    let value = lookup(key).ok_or_else(|| format!("value {key:?} is missing"))?;
                    match fallback {
                        Some(fallback) if value.trim().is_empty() => out.push_str(fallback),
                        _ => out.push_str(&escape(&value)),
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The parsed subject, text and HTML templates of one mail.
#[derive(Debug, Clone)]
struct TemplateSet {
    subject: Compiled,
    text: Compiled,
    html: Compiled,
}

/// Renders mails from subject, text and HTML templates.
///
/// The crate ships `templates/<name>.subject.txt`, `<name>.txt` and `<name>.html` for every
/// [`MailTemplate`] (`<name>` is [`MailTemplate::name`]). An override directory may hold
/// any of these files; each one present replaces the shipped one.
///
/// Placeholders are `{{key}}`, or `{{key|fallback}}` to write `fallback` when the value is
/// empty (`Hello {{name|there}},`). Keys: `email`, `name` (may be empty), `app_name`,
/// `app_url` in every mail; `link` and `expires_in_minutes` in `verify_email`,
/// `password_reset` and `magic_link`; `code` and `expires_in_minutes` in `email_otp`.
/// A template with an unknown key, or a key that mail is never given, is refused at
/// construction. In HTML every value is HTML-escaped; in the subject, control characters
/// (CR, LF) in values become spaces.
#[derive(Debug, Clone)]
pub struct TemplateRenderer {
    templates: HashMap<MailTemplate, TemplateSet>,
    app_name: String,
}

impl TemplateRenderer {
    /// Loads the shipped templates, replaced file by file by those in `override_dir`, and
    /// checks every one by rendering it with sample values. `app_name` is used when an
    /// intent carries no `app_name` value. Errors name the offending file.
    pub fn new(override_dir: Option<&Path>, app_name: String) -> Result<Self, String> {
        if let Some(dir) = override_dir {
            check_override_dir(dir)?;
        }
        let known = known_keys();
        let mut templates = HashMap::new();
        for template in MailTemplate::ALL {
            let allowed = allowed_keys(template);
            let sources = shipped(template);
            let mut compiled = Vec::with_capacity(3);
            for (part, shipped_source) in Part::ALL.into_iter().zip(sources) {
                let file = part.file_name(template);
                let (source, origin) = match override_dir {
                    Some(dir) => match read_override(&dir.join(&file))? {
                        Some(source) => (source, dir.join(&file).display().to_string()),
                        None => (shipped_source.to_owned(), format!("(shipped) {file}")),
                    },
                    None => (shipped_source.to_owned(), format!("(shipped) {file}")),
                };
                let source = match part {
                    Part::Subject => {
                        let line = source.trim();
                        if line.contains(['\r', '\n']) {
                            return Err(format!("mail template {origin}: a subject is one line"));
                        }
                        line.to_owned()
                    }
                    Part::Text | Part::Html => source,
                };
                let parsed = Compiled::parse(&source, &origin)?;
                for key in parsed.keys() {
                    if !known.contains(key) {
                        return Err(format!(
                            "mail template {origin}: unknown placeholder {{{{{key}}}}} \
                             (known: {})",
                            known.iter().copied().collect::<Vec<_>>().join(", ")
                        ));
                    }
                    if !allowed.contains(&key) {
                        return Err(format!(
                            "mail template {origin}: {{{{{key}}}}} is never given to the {} \
                             mail (it has: {})",
                            template.name(),
                            allowed.join(", ")
                        ));
                    }
                }
                let sample = parsed
                    .render(&|key| Some(sample_value(key).to_owned()), html_escape)
                    .map_err(|e| format!("mail template {origin}: {e}"))?;
                if part == Part::Subject && sample.trim().is_empty() {
                    return Err(format!("mail template {origin}: the subject is empty"));
                }
                compiled.push(parsed);
            }
            let [subject, text, html]: [Compiled; 3] = compiled
                .try_into()
                .map_err(|_| "mail templates: internal error".to_owned())?;
            templates.insert(
                template,
                TemplateSet {
                    subject,
                    text,
                    html,
                },
            );
        }
        Ok(Self {
            templates,
            app_name,
        })
    }
}

impl MailRenderer for TemplateRenderer {
    fn render(&self, intent: &MailIntent) -> Result<EmailMessage, AdapterError> {
        let name = intent.template.name();
        let set = self
            .templates
            .get(&intent.template)
            .ok_or_else(|| format!("mail {name}: no template"))?;
        let lookup = |key: &str| match intent.values.get(key) {
            Some(value) => Some(value.clone()),
            None if key == "app_name" => Some(self.app_name.clone()),
            None => None,
        };
        let part = |compiled: &Compiled, escape: Escape, file: &str| {
            compiled
                .render(&lookup, escape)
                .map_err(|e| format!("mail {name} ({file}): {e}"))
        };
        let subject = part(&set.subject, one_line, "subject")?;
        let text = part(&set.text, verbatim, "text")?;
        let html = part(&set.html, html_escape, "html")?;
        Ok(EmailMessage {
            to: intent.to.clone(),
            subject: subject.trim().to_owned(),
            text,
            html,
        })
    }
}

/// The override directory must exist; files in it that no template uses are reported.
fn check_override_dir(dir: &Path) -> Result<(), String> {
    let entries =
        fs::read_dir(dir).map_err(|e| format!("mail template directory {}: {e}", dir.display()))?;
    let expected: BTreeSet<String> = MailTemplate::ALL
        .into_iter()
        .flat_map(|t| Part::ALL.map(|p| p.file_name(t)))
        .collect();
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if !expected.contains(&file) {
            tracing::warn!(
                dir = %dir.display(),
                file = %file,
                "file in the mail template directory is not a template name: ignored"
            );
        }
    }
    Ok(())
}

/// The content of an override file, `None` when there is none.
fn read_override(path: &Path) -> Result<Option<String>, String> {
    match fs::read_to_string(path) {
        Ok(source) => Ok(Some(source)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("mail template {}: {e}", path.display())),
    }
}

/// How a value is written into a part of the mail.
type Escape = fn(&str) -> String;

/// A value for a text body: as is.
fn verbatim(value: &str) -> String {
    value.to_owned()
}

/// A value for a subject: one line (CR, LF and other control characters become spaces).
fn one_line(value: &str) -> String {
    crate::message::one_line(value)
}

/// Escapes a value for HTML text and quoted attribute values.
fn html_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
