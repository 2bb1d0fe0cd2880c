//! The pages behind the emailed links, driven over HTTP as a browser would (cookies kept,
//! forms posted with their CSRF token, redirects followed by hand), with a real SMTP
//! server receiving the emails.

use crate::common::{OWNER_PASSWORD, Practice, STAFF_PASSWORD, TestDb, setup_token};
use reqwest::StatusCode;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

crate::on_both_databases!(
    a_new_hire_activates_their_account_from_the_emailed_link,
    an_owner_signs_in_from_the_approval_email_and_approves,
    a_rejection_needs_a_reason_that_reaches_the_requester,
    expired_links_resets_and_temporary_passwords,
);

const WAIT: Duration = Duration::from_secs(20);

/// A browser: keeps cookies (whatever their Secure flag: the test server is plain HTTP),
/// never follows a redirect by itself.
struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: HashMap<String, String>,
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Browser {
    fn new(p: &Practice) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: p.server.url(""),
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let response = request.header("cookie", cookie).send().await.expect("page");
        for set in response.headers().get_all("set-cookie") {
            let text = set.to_str().unwrap();
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Answer {
            status: response.status(),
            location: response
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned()),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    /// Follows redirects from `path` to the page they end on.
    async fn open(&mut self, path: &str) -> Answer {
        let mut answer = self.get(path).await;
        for _ in 0..5 {
            let Some(next) = answer.location.clone() else {
                break;
            };
            answer = self.get(&next).await;
        }
        answer
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let request = self.client.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }
}

/// The CSRF token of a page, or nothing when it has no form.
fn csrf_or_empty(page: &str) -> String {
    if page.contains("name=\"csrf\"") {
        csrf(page)
    } else {
        String::new()
    }
}

/// The CSRF token a page's forms carry.
fn csrf(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").expect("a form") + 19;
    page[start..].split('"').next().unwrap().to_owned()
}

async fn a_new_hire_activates_their_account_from_the_emailed_link(db: TestDb) {
    let p = Practice::start(&db, vec![]).await;
    let olivia = p.login("olivia").await;
    let (_, body) = p
        .server
        .graphql(
            Some(&olivia),
            "mutation { inviteUser(input: {username: \"nina\", firstName: \"Nina\", lastName: \"Novak\", email: \"nina@sunrise.example\", kind: STAFF}) { userErrors { code } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["inviteUser"]["userErrors"],
        json!([]),
        "{body}"
    );
    let email = p.smtp.wait_for(1, WAIT).await.pop().unwrap();
    let token = setup_token(&email.text());

    let mut browser = Browser::new(&p);
    let first = browser.get(&format!("/account/setup?token={token}")).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    assert_eq!(
        first.location.as_deref(),
        Some("/account/setup"),
        "the token leaves the URL"
    );
    // The browser keeps only the handle of a server-side form state, never the token.
    let handle = browser.cookies["__Host-gh_setup"].clone();
    assert!(handle.len() >= 40 && handle != token, "{handle}");
    for header in first.headers.values() {
        assert!(!header.to_str().unwrap_or("").contains(&token));
    }
    let form = browser.open("/account/setup").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    for shown in ["Nina Novak", "nina", "Sunrise", "At least 12 characters"] {
        assert!(form.body.contains(shown), "{shown} missing: {}", form.body);
    }
    let csrf_token = csrf(&form.body);
    let fields = |password: &'static str, again: &'static str| {
        vec![
            ("new_password", password),
            ("confirm_password", again),
            ("question1", "First pet?"),
            ("answer1", "Rex"),
            ("question2", "First street?"),
            ("answer2", "Elm"),
            ("question3", "First teacher?"),
            ("answer3", "Ms Lee"),
        ]
    };
    // A post without the CSRF token changes nothing.
    let forged = browser
        .post(
            "/account/setup",
            &fields("a quiet harbor at dawn", "a quiet harbor at dawn"),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let mut mismatch = fields("a quiet harbor at dawn", "a quiet harbor at dusk");
    mismatch.push(("csrf", &csrf_token));
    let answer = browser.post("/account/setup", &mismatch).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.body.contains("The two passwords are not the same."));
    let mut weak = fields("short", "short");
    weak.push(("csrf", &csrf_token));
    let answer = browser.post("/account/setup", &weak).await;
    assert!(
        answer.body.contains("at least 12 characters"),
        "{}",
        answer.body
    );
    assert!(answer.body.contains("aria-invalid=\"true\""));
    let mut good = fields("a quiet harbor at dawn", "a quiet harbor at dawn");
    good.push(("csrf", &csrf_token));
    let done = browser.post("/account/setup", &good).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("is ready"));
    assert!(
        !browser.cookies.contains_key("__Host-gh_setup"),
        "the link's cookie is gone"
    );
    // The form state went with the used link: replaying the handle finds nothing.
    browser.cookies.insert("__Host-gh_setup".into(), handle);
    let replay = browser.open("/account/setup").await;
    assert!(
        replay.body.contains("Open the link from your email again"),
        "{}",
        replay.body
    );
    p.server.login("nina", "a quiet harbor at dawn").await;
    // The used link is refused, with a way to ask for a new one.
    let again = browser.open(&format!("/account/setup?token={token}")).await;
    assert!(again.body.contains("cannot be used"), "{}", again.body);
    assert!(again.body.contains("action=\"/account/reset\""));
    // Every page is sent with the security headers.
    for (name, value) in [
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(again.headers.get(name).unwrap(), value);
    }
    let csp = again
        .headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"));
}

async fn file_license_request(p: &Practice) -> String {
    let adam = p.login("adam").await;
    let (_, body) = p
        .server
        .graphql(
            Some(&adam),
            "mutation { requestLicenses(input: {product: EHR, kind: STAFF, quantity: 2, justification: \"two new nurses\"}) { request { id } userErrors { code } } }",
            json!({}),
        )
        .await;
    body["data"]["requestLicenses"]["request"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned()
}

/// The path of the approval link in the email sent to `to`.
async fn approval_link(p: &Practice, to: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        for email in p.smtp.received() {
            let text = email.text();
            if email.header("To").is_some_and(|t| t.contains(to))
                && let Some(at) = text.find("https://gatehouse.test/requests/")
            {
                let link: String = text[at + "https://gatehouse.test".len()..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<')
                    .collect();
                return link;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no approval email to {to}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sign_in_from(browser: &mut Browser, link: &str, username: &str, password: &str) {
    let first = browser.get(link).await;
    let signin = first.location.expect("sign in first");
    assert!(signin.starts_with("/signin?next="), "{signin}");
    let page = browser.get(&signin).await;
    let next = link.to_owned();
    let answer = browser
        .post(
            "/signin",
            &[
                ("csrf", &csrf(&page.body)),
                ("username", username),
                ("password", password),
                ("next", &next),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(answer.location.as_deref(), Some(link), "back to the link");
}

async fn an_owner_signs_in_from_the_approval_email_and_approves(db: TestDb) {
    let p = Practice::start(&db, vec![]).await;
    let id = file_license_request(&p).await;
    let link = approval_link(&p, "olivia@").await;
    assert_eq!(link, format!("/requests/{id}"));
    let mut browser = Browser::new(&p);
    sign_in_from(&mut browser, &link, "olivia", OWNER_PASSWORD).await;
    let page = browser.get(&link).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for shown in ["Add 2 EHR licenses", "two new nurses", "adam", "invoice"] {
        assert!(page.body.contains(shown), "{shown} missing: {}", page.body);
    }
    let token = csrf(&page.body);
    let without_terms = browser
        .post(&format!("{link}/approve"), &[("csrf", &token)])
        .await;
    assert_eq!(without_terms.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        without_terms.body.contains("autofocus"),
        "focus on the error"
    );
    let approved = browser
        .post(
            &format!("{link}/approve"),
            &[
                ("csrf", &token),
                ("accept_terms", "yes"),
                ("comment", "welcome"),
            ],
        )
        .await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.body);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let page = browser.get(&link).await;
        if page.body.contains(">applied<") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", page.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The session is a real one: listed, and ended by signing out.
    let (_, me) = p
        .server
        .graphql(
            Some(&p.login("olivia").await),
            "{ me { sessions { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(me["data"]["me"]["sessions"].as_array().unwrap().len(), 2);
    let inbox = browser.get("/requests").await;
    let out = browser
        .post("/signout", &[("csrf", &csrf(&inbox.body))])
        .await;
    assert_eq!(out.location.as_deref(), Some("/signin"));
    assert!(
        browser
            .get(&link)
            .await
            .location
            .unwrap()
            .starts_with("/signin")
    );
}

async fn a_rejection_needs_a_reason_that_reaches_the_requester(db: TestDb) {
    let p = Practice::start(&db, vec![]).await;
    let id = file_license_request(&p).await;
    let link = approval_link(&p, "oscar@").await;
    // The requester sees it read-only, with why.
    let mut requester = Browser::new(&p);
    sign_in_from(&mut requester, &link, "adam", STAFF_PASSWORD).await;
    let own = requester.get(&link).await;
    assert!(
        own.body
            .contains("Only an owner of the organization decides"),
        "{}",
        own.body
    );
    assert!(!own.body.contains("/approve"));
    let mut browser = Browser::new(&p);
    sign_in_from(&mut browser, &link, "oscar", STAFF_PASSWORD).await;
    let page = browser.get(&link).await;
    let token = csrf(&page.body);
    let blank = browser
        .post(
            &format!("{link}/reject"),
            &[("csrf", &token), ("reason", "  ")],
        )
        .await;
    assert_eq!(blank.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(blank.body.contains("Give the reason"), "{}", blank.body);
    let rejected = browser
        .post(
            &format!("{link}/reject"),
            &[
                ("csrf", &token),
                ("reason", "we are over budget this quarter"),
            ],
        )
        .await;
    assert_eq!(rejected.status, StatusCode::SEE_OTHER, "{}", rejected.body);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let to_adam = p.smtp.received().into_iter().any(|e| {
            e.header("To").is_some_and(|t| t.contains("adam@"))
                && e.text().contains("we are over budget this quarter")
        });
        if to_adam {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no rejection email to adam"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Another organization's request is the same 404 as an unknown one.
    crate::common::seed_org(&p.server.app, "Other Clinic", "otto").await;
    let mut otto = Browser::new(&p);
    sign_in_from(&mut otto, &link, "otto", OWNER_PASSWORD).await;
    let foreign = otto.get(&link).await;
    let unknown = otto.get("/requests/QWNjb3VudFJlcXVlc3Q6OTk5").await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert_eq!(
        foreign.body.replace(&csrf_or_empty(&foreign.body), ""),
        unknown.body.replace(&csrf_or_empty(&unknown.body), "")
    );
    // An unknown request is a 404, and so is one the caller may not see.
    let unknown = browser.get("/requests/QWNjb3VudFJlcXVlc3Q6OTk5").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let mut mia = Browser::new(&p);
    sign_in_from(&mut mia, &link, "mia", STAFF_PASSWORD).await;
    let seen = mia.get(&link).await;
    assert_eq!(
        seen.status,
        StatusCode::NOT_FOUND,
        "a member sees only their own requests"
    );
    let _ = id;
}

async fn expired_links_resets_and_temporary_passwords(db: TestDb) {
    let p = Practice::start(&db, vec![]).await;
    let mut browser = Browser::new(&p);
    // "Forgot password" answers the same for an unknown account as for a known one.
    let form = browser.get("/account/reset").await;
    let token = csrf(&form.body);
    let unknown = browser
        .post(
            "/account/reset",
            &[("csrf", &token), ("username", "nobody-here")],
        )
        .await;
    let known = browser
        .post("/account/reset", &[("csrf", &token), ("username", "mia")])
        .await;
    assert_eq!(unknown.status, StatusCode::OK);
    assert_eq!(unknown.body, known.body);
    let email = p.smtp.wait_for(1, WAIT).await.pop().unwrap();
    let link = setup_token(&email.text());
    // Cookies on an https site: the __Host- prefix, Secure, HttpOnly.
    let first = browser.get(&format!("/account/setup?token={link}")).await;
    let cookie = first.headers.get("set-cookie").unwrap().to_str().unwrap();
    for part in [
        "__Host-gh_setup=",
        "Path=/",
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
    ] {
        assert!(cookie.contains(part), "{part} missing in {cookie}");
    }
    // A reset of a user with security questions asks one; mia has none, so it does not.
    let page = browser.open("/account/setup").await;
    assert!(page.body.contains("Reset your password"), "{}", page.body);
    assert!(!page.body.contains("current_answer"));
    // The page opened from the link lasts 15 minutes; the link itself still works.
    p.server.clock.advance(Duration::from_secs(14 * 60));
    let page = browser.open("/account/setup").await;
    assert!(page.body.contains("Reset your password"), "{}", page.body);
    p.server.clock.advance(Duration::from_secs(2 * 60));
    let stale = browser.open("/account/setup").await;
    assert!(
        stale.body.contains("Open the link from your email again"),
        "{}",
        stale.body
    );
    let reopened = browser.open(&format!("/account/setup?token={link}")).await;
    assert!(
        reopened.body.contains("Reset your password"),
        "{}",
        reopened.body
    );
    // 72 hours after it was sent (the default) the link has expired.
    p.server.clock.advance(Duration::from_secs(72 * 3600));
    let expired = browser.open(&format!("/account/setup?token={link}")).await;
    assert!(
        expired.body.contains("This link has expired"),
        "{}",
        expired.body
    );
    assert!(expired.body.contains("action=\"/account/reset\""));

    // A temporary password leads to the change-password page before anything else.
    let olivia = p.login("olivia").await;
    let mia = p.user_id("mia").await;
    let (_, body) = p
        .server
        .graphql(
            Some(&olivia),
            "mutation($i: SetTemporaryPasswordInput!) { setTemporaryPassword(input: $i) { userErrors { code } } }",
            json!({ "i": { "userId": mia, "temporaryPassword": "temporary passphrase 1", "adminPassword": OWNER_PASSWORD } }),
        )
        .await;
    assert_eq!(
        body["data"]["setTemporaryPassword"]["userErrors"],
        json!([]),
        "{body}"
    );
    let signin = browser.get("/signin").await;
    let answer = browser
        .post(
            "/signin",
            &[
                ("csrf", &csrf(&signin.body)),
                ("username", "mia"),
                ("password", "temporary passphrase 1"),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(answer.location.as_deref(), Some("/account/password"));
    let elsewhere = browser.get("/requests").await;
    assert_eq!(elsewhere.location.as_deref(), Some("/account/password"));
    let page = browser.get("/account/password").await;
    let changed = browser
        .post(
            "/account/password",
            &[
                ("csrf", &csrf(&page.body)),
                ("current_password", "temporary passphrase 1"),
                ("new_password", "my own long passphrase"),
                ("confirm_password", "my own long passphrase"),
            ],
        )
        .await;
    assert!(
        changed.body.contains("Your password is changed"),
        "{}",
        changed.body
    );
    p.server.login("mia", "my own long passphrase").await;
    // A wrong sign-in stays on the page with the error; a form body too large is refused.
    let signin = browser.get("/signin").await;
    let wrong = browser
        .post(
            "/signin",
            &[
                ("csrf", &csrf(&signin.body)),
                ("username", "mia"),
                ("password", "nope"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    let big = "x".repeat(100_000);
    let huge = browser
        .post("/signin", &[("csrf", "x"), ("username", &big)])
        .await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
}
