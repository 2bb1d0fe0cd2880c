//! The page shell and its one stylesheet.

use axum::http::header;
use axum::response::IntoResponse;
use maud::{DOCTYPE, Markup, html};

const STYLESHEET: &str = include_str!("gatehouse.css");

pub(super) async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
}

/// Who is signed in, for the header's sign-out button.
pub(super) struct SignedIn<'a> {
    pub name: &'a str,
    pub csrf: &'a str,
}

/// A whole page: the title (also its heading), the signed-in user if any, the content.
pub(super) fn page(title: &str, signed_in: Option<SignedIn<'_>>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Gatehouse" }
                link rel="stylesheet" href="/static/gatehouse.css";
            }
            body {
                header class="top" {
                    a class="brand" href="/requests" { "Gatehouse" }
                    @if let Some(user) = signed_in {
                        form class="signout" method="post" action="/signout" {
                            span { "Signed in as " (user.name) }
                            input type="hidden" name="csrf" value=(user.csrf);
                            button type="submit" class="link" { "Sign out" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}
