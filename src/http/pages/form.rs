//! What every form shares: the CSRF token, fields with their labels and errors, and the
//! response that carries the cookies a page sets.

use super::{CSRF, Cookies};
use crate::http::AppState;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

/// A page's answer: its status, the cookies it sets, its HTML.
pub(super) struct Page {
    pub status: StatusCode,
    pub cookies: Vec<HeaderValue>,
    pub markup: Markup,
}

impl Page {
    /// A form page: 200, or 422 when it shows errors; with the CSRF cookie when new.
    pub fn form(errors: &Errors, csrf_cookie: Option<HeaderValue>, markup: Markup) -> Page {
        let status = if errors.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        Page {
            status,
            cookies: csrf_cookie.into_iter().collect(),
            markup,
        }
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.markup).into_response();
        for cookie in self.cookies {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        response
    }
}

/// The CSRF token of this browser, and the cookie that sets it when it had none.
pub(super) fn csrf(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    let cookies = Cookies::of(state);
    match cookies.get(headers, CSRF) {
        Some(token) if token.len() == 43 => (token, None),
        _ => {
            let (token, _) = crate::app::crypto::new_token();
            let cookie = cookies.set(CSRF, &token, 12 * 3600, "Strict");
            (token, Some(cookie))
        }
    }
}

/// Whether a posted form carries this browser's CSRF token.
pub(super) fn csrf_ok(state: &AppState, headers: &HeaderMap, posted: &str) -> bool {
    match Cookies::of(state).get(headers, CSRF) {
        Some(token) => {
            token.len() == posted.len()
                && token
                    .bytes()
                    .zip(posted.bytes())
                    .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                    == 0
        }
        None => false,
    }
}

/// The hidden field of the CSRF token.
pub(super) fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// Errors of a posted form, by field name, in the order the fields appear.
#[derive(Default)]
pub(super) struct Errors(Vec<(&'static str, String)>);

impl Errors {
    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push((field, message.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn message(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
    }

    fn first(&self) -> Option<&str> {
        self.0.first().map(|(f, _)| *f)
    }

    /// Errors that belong to no field, shown above the form.
    pub fn summary(&self, fields: &[&str]) -> Markup {
        let general: Vec<&str> = self
            .0
            .iter()
            .filter(|(f, _)| !fields.contains(f))
            .map(|(_, m)| m.as_str())
            .collect();
        html! {
            @if !self.0.is_empty() {
                div class="error-summary" role="alert" {
                    p { "Please correct what is marked below." }
                    @for message in &general { p { (message) } }
                }
            }
        }
    }
}

/// One input with its label, hint and error.
pub(super) struct Input<'a> {
    pub name: &'static str,
    pub label: &'a str,
    pub kind: &'static str,
    pub value: &'a str,
    pub autocomplete: &'static str,
    pub hint: Option<&'a str>,
}

impl Input<'_> {
    pub fn render(&self, errors: &Errors) -> Markup {
        let error = errors.message(self.name);
        let hint_id = format!("{}-hint", self.name);
        let error_id = format!("{}-error", self.name);
        let described = match (self.hint.is_some(), error.is_some()) {
            (true, true) => Some(format!("{hint_id} {error_id}")),
            (true, false) => Some(hint_id.clone()),
            (false, true) => Some(error_id.clone()),
            (false, false) => None,
        };
        let focus = errors.first() == Some(self.name);
        html! {
            div class={ "field" @if error.is_some() { " invalid" } } {
                label for=(self.name) { (self.label) }
                @if let Some(hint) = self.hint { p class="hint" id=(hint_id) { (hint) } }
                @if let Some(error) = error { p class="error" id=(error_id) { (error) } }
                input id=(self.name) name=(self.name) type=(self.kind) value=(self.value)
                    autocomplete=(self.autocomplete)
                    aria-describedby=[described]
                    aria-invalid=[error.map(|_| "true")]
                    autofocus[focus];
            }
        }
    }
}

/// Percent-encodes a value for a URL's query.
pub(super) fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
