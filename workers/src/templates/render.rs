//! The templates (minijinja): each email is `<name>.txt`, whose `subject` block is the
//! subject and whose whole is the plain-text body, and `<name>.html`, the HTML body; both
//! extend a layout (`layout.txt`, `layout.html`) that carries the organization's name and
//! the support contact. Any of these files in the template directory replaces the built-in
//! one of that name; each is tried on sample data when loaded, so a broken override stops
//! the start naming its file instead of failing an email later.

use super::{Email, Rendered};
use minijinja::{Environment, UndefinedBehavior, Value, context};
use std::path::Path;

/// The layouts and, for each email, its text and HTML template, from `workers/templates`.
macro_rules! built_in {
    ($($name:literal),* $(,)?) => {
        &[
            ("layout.txt", include_str!("../../templates/layout.txt")),
            ("layout.html", include_str!("../../templates/layout.html")),
            $(
                (concat!($name, ".txt"), include_str!(concat!("../../templates/", $name, ".txt"))),
                (concat!($name, ".html"), include_str!(concat!("../../templates/", $name, ".html"))),
            )*
        ]
    };
}

/// The built-in templates, each overridable by a file of the same name.
const BUILT_IN: &[(&str, &str)] = built_in!(
    "account_setup_invitation",
    "account_setup_reset",
    "account_locked",
    "approval_needed",
    "approval_reminder",
    "request_outcome",
    "password_changed",
    "encryption_key_reset",
);

/// Who an email speaks for: the recipient's organization, and whom to ask for help.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Brand {
    pub organization: String,
    /// The operator's support contact (GATEHOUSE_SUPPORT_CONTACT); empty: the practice's
    /// administrator.
    pub support: String,
}

/// A template that cannot be used, named with its file.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{0}: {1}")]
    File(String, String),
    #[error("{file}: {error:#}")]
    Template {
        file: String,
        error: minijinja::Error,
    },
}

/// The email templates, loaded once.
pub struct Templates {
    env: Environment<'static>,
    /// Where emails link to, without a trailing slash.
    base: String,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("base", &self.base)
            .finish()
    }
}

impl Templates {
    /// The built-in templates alone.
    pub fn built_in(public_url: &str) -> Self {
        Self::load(None, public_url).expect("the built-in templates render their samples")
    }

    /// The built-in templates, each replaced by the file of its name in `dir` when there
    /// is one. A file there that names no template, or a template that does not render
    /// every sample, is an error.
    pub fn load(dir: Option<&Path>, public_url: &str) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_trim_blocks(true);
        env.set_keep_trailing_newline(true);
        for (name, source) in BUILT_IN {
            let source = match dir.map(|d| d.join(name)).filter(|p| p.exists()) {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|e| TemplateError::File(path.display().to_string(), e.to_string()))?,
                None => (*source).to_owned(),
            };
            env.add_template_owned(*name, source)
                .map_err(|error| TemplateError::Template {
                    file: (*name).to_owned(),
                    error,
                })?;
        }
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir)
                .map_err(|e| TemplateError::File(dir.display().to_string(), e.to_string()))?;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let known = BUILT_IN.iter().any(|(n, _)| *n == name);
                if !known && (name.ends_with(".txt") || name.ends_with(".html")) {
                    return Err(TemplateError::File(
                        entry.path().display().to_string(),
                        format!("no email has this template; the templates are {}", names()),
                    ));
                }
            }
        }
        let templates = Self {
            env,
            base: public_url.trim_end_matches('/').to_owned(),
        };
        let brand = Brand {
            organization: "Sunrise Family Practice".into(),
            support: "support@vendor.example".into(),
        };
        for sample in Email::samples() {
            templates.render(&sample, &brand)?;
            templates.render(&sample, &Brand::default())?;
        }
        Ok(templates)
    }

    /// Renders an email for its recipient's organization.
    pub fn render(&self, email: &Email, brand: &Brand) -> Result<Rendered, TemplateError> {
        let name = email.template();
        let ctx = context! {
            organization => &brand.organization,
            support => &brand.support,
            public_url => &self.base,
            // A parsed URL with URL-safe tokens: nothing in it needs escaping, and left as
            // it is it stays readable and copyable in the HTML source.
            link => email.link(&self.base).map(Value::from_safe_string),
            ..Value::from_serialize(email)
        };
        let fail = |file: String| move |error| TemplateError::Template { file, error };
        let text_name = format!("{name}.txt");
        let text = self
            .env
            .get_template(&text_name)
            .map_err(fail(text_name.clone()))?;
        let mut captured = text
            .render_captured(&ctx)
            .map_err(fail(text_name.clone()))?;
        let subject = captured
            .with_state_mut(|state| state.render_block("subject"))
            .map_err(fail(text_name))?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let text = captured.into_output();
        let html_name = format!("{name}.html");
        let html = self
            .env
            .get_template(&html_name)
            .and_then(|t| t.render(context! { subject => &subject, ..ctx }))
            .map_err(fail(html_name))?;
        Ok(Rendered {
            subject,
            text,
            html,
        })
    }
}

/// The file names of the templates, for an error message.
fn names() -> String {
    BUILT_IN
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}
