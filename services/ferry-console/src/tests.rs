//! The console's handlers without a browser: a real side (real SQLite), the router called as a service.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use ferry_core::{JobState, Side, Store};
use tower::ServiceExt as _;

use crate::{Console, Options};

struct Fixture {
    _dir: tempfile::TempDir,
    config: std::path::PathBuf,
    console: Console,
    router: Router,
    host: String,
}

const HOSTILE_TITLE: &str = "<script>alert('title')</script>\u{202e}gnp.exe";

fn submit(config: &std::path::Path, title: &str, code: &str) -> String {
    let side = ferry_transfer::SideDir::open(config).unwrap();
    let mut store = Store::open(&side.layout.state_db()).unwrap();
    let request = ferry_core::wire::JobRequest {
        job_id: uuid::Uuid::new_v4(),
        title: title.into(),
        description: "<img src=x onerror=alert(1)>".into(),
        runtime: "python".into(),
        code: code.into(),
        assets: vec![],
        revises: None,
        resources: None,
    };
    let tx = store.begin(Side::Low).unwrap();
    tx.submit(&request, "alice").unwrap();
    tx.commit().unwrap();
    request.job_id.to_string()
}

async fn low_side() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let made = ferry_transfer::setup::init(
        Side::Low,
        &dir.path().join("low"),
        "amqp://guest:guest@127.0.0.1:5672/ferry-low",
    )
    .unwrap();
    let console = Console::bind(Options {
        config: made.config_file.clone(),
        key: None,
        actor: "owner:test".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
    })
    .await
    .unwrap();
    let router = console.router();
    let host = format!("127.0.0.1:{}", console.port());
    Fixture {
        _dir: dir,
        config: made.config_file,
        console,
        router,
        host,
    }
}

impl Fixture {
    async fn send(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = axum::body::to_bytes(res.into_body(), 1 << 24)
            .await
            .unwrap();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn get(&self, path: &str, cookie: Option<&str>) -> Request<Body> {
        let mut b = Request::get(path).header(header::HOST, &self.host);
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, format!("ferry_console={c}"));
        }
        b.body(Body::empty()).unwrap()
    }

    fn post(&self, path: &str, cookie: &str, form: &str) -> Request<Body> {
        Request::post(path)
            .header(header::HOST, &self.host)
            .header(header::COOKIE, format!("ferry_console={cookie}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_string()))
            .unwrap()
    }

    fn token(&self) -> String {
        self.console
            .url()
            .split("token=")
            .nth(1)
            .unwrap()
            .to_string()
    }

    async fn sign_in(&self) -> String {
        let (status, headers, _) = self
            .send(self.get(&format!("/login?token={}", self.token()), None))
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_string();
        cookie
            .strip_prefix("ferry_console=")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    }

    fn state(&self, id: &str) -> JobState {
        let side = ferry_transfer::SideDir::open(&self.config).unwrap();
        side.store.job(id).unwrap().unwrap().state
    }

    fn csrf(page: &str) -> String {
        let at = page.find("name=\"csrf\" value=\"").unwrap() + 19;
        page[at..at + 64].to_string()
    }

    fn seen(page: &str) -> String {
        let at = page.find("name=\"seen\" value=\"").unwrap() + 19;
        page[at..].split('"').next().unwrap().to_string()
    }
}

#[tokio::test]
async fn every_page_answers_401_without_the_session_cookie_and_403_for_another_host() {
    let f = low_side().await;
    let id = submit(&f.config, "t", "print(1)\n");
    for path in ["/", "/audit", &format!("/job/{id}"), "/console.css"] {
        let (status, headers, body) = f.send(f.get(path, None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(body.contains("Sign in first"), "{body}");
        assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
        let (status, _, _) = f.send(f.get(path, Some(&"0".repeat(64)))).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{path} with a made-up cookie"
        );
    }
    let cookie = f.sign_in().await;
    let rebound = Request::get("/")
        .header(header::HOST, format!("evil.example:{}", f.console.port()))
        .header(header::COOKIE, format!("ferry_console={cookie}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(f.send(rebound).await.0, StatusCode::FORBIDDEN);
    assert_eq!(f.send(f.get("/", Some(&cookie))).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_sign_in_token_is_refused_once_used_and_when_wrong() {
    let f = low_side().await;
    let token = f.token();
    let (status, _, _) = f.send(f.get("/login?token=nope", None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, headers, _) = f.send(f.get(&format!("/login?token={token}"), None)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let set = headers[header::SET_COOKIE].to_str().unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains(&token), "the cookie is not the sign-in token");
    let (status, _, body) = f.send(f.get(&format!("/login?token={token}"), None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("used already"), "{body}");
}

#[tokio::test]
async fn pages_carry_a_strict_csp_and_show_hostile_text_inert() {
    let f = low_side().await;
    let id = submit(
        &f.config,
        HOSTILE_TITLE,
        "print('</td><script>alert(2)</script>')  # \u{200b}\n",
    );
    let cookie = f.sign_in().await;
    for path in ["/".to_string(), format!("/job/{id}")] {
        let (status, headers, body) = f.send(f.get(&path, Some(&cookie))).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert!(
            !body.contains("<script"),
            "{path}: a script tag reached the page"
        );
        assert!(!body.contains("<img src=x"), "{path}");
        assert!(
            !body.contains('\u{202e}'),
            "{path}: a raw bidi override reached the page"
        );
        assert!(
            body.contains("&lt;script&gt;alert('title')&lt;/script&gt;"),
            "{body}"
        );
        assert!(
            body.contains(">\\u{202e}</span>"),
            "{path}: the override is shown as its escape"
        );
    }
    let (_, _, job) = f.send(f.get(&format!("/job/{id}"), Some(&cookie))).await;
    assert!(job.contains(">\\u{200b}</span>"), "{job}");
    assert!(job.contains("&lt;/td&gt;&lt;script&gt;"), "{job}");
}

#[tokio::test]
async fn a_post_without_the_csrf_token_changes_nothing() {
    let f = low_side().await;
    let id = submit(&f.config, "t", "print(1)\n");
    let cookie = f.sign_in().await;
    let (_, _, page) = f.send(f.get(&format!("/job/{id}"), Some(&cookie))).await;
    let seen = Fixture::seen(&page);
    for form in [
        format!("decision=approve&seen={seen}"),
        format!("decision=approve&seen={seen}&csrf="),
        format!("decision=approve&seen={seen}&csrf={}", "0".repeat(64)),
    ] {
        let (status, _, body) = f
            .send(f.post(&format!("/job/{id}/decision"), &cookie, &form))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{form}");
        assert!(body.contains("CSRF"), "{body}");
        assert_eq!(f.state(&id), JobState::Submitted);
    }
    // Another site's page posting with the owner's cookie (were it sent) is refused by its Origin too.
    let csrf = Fixture::csrf(&page);
    let mut cross = f.post(
        &format!("/job/{id}/decision"),
        &cookie,
        &format!("decision=approve&seen={seen}&csrf={csrf}"),
    );
    cross
        .headers_mut()
        .insert(header::ORIGIN, "http://evil.example".parse().unwrap());
    assert_eq!(f.send(cross).await.0, StatusCode::FORBIDDEN);
    let mut cross = f.post(
        &format!("/job/{id}/decision"),
        &cookie,
        &format!("decision=approve&seen={seen}&csrf={csrf}"),
    );
    cross
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    assert_eq!(f.send(cross).await.0, StatusCode::FORBIDDEN);
    assert_eq!(f.state(&id), JobState::Submitted);
}

#[tokio::test]
async fn a_decision_is_made_through_the_cli_path_and_refused_once_the_job_changed() {
    let f = low_side().await;
    let id = submit(&f.config, "t", "print(1)\n");
    let other = submit(&f.config, "u", "print(2)\n");
    let cookie = f.sign_in().await;
    let (_, _, page) = f.send(f.get(&format!("/job/{id}"), Some(&cookie))).await;
    let (csrf, seen) = (Fixture::csrf(&page), Fixture::seen(&page));
    let (status, headers, _) = f
        .send(f.post(
            &format!("/job/{id}/decision"),
            &cookie,
            &format!("decision=approve&seen={seen}&csrf={csrf}"),
        ))
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], format!("/job/{id}").as_str());
    assert_eq!(f.state(&id), JobState::Approved);
    let (_, _, page) = f.send(f.get(&format!("/job/{id}"), Some(&cookie))).await;
    assert!(
        page.contains("is now approved"),
        "the CLI's own summary is shown"
    );
    // The same (now stale) form again: refused, clearly, and nothing changes.
    let (status, _, body) = f
        .send(f.post(
            &format!("/job/{id}/decision"),
            &cookie,
            &format!("decision=reject&reason=no&seen={seen}&csrf={csrf}"),
        ))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains("changed since this page showed it"), "{body}");
    assert_eq!(f.state(&id), JobState::Approved);
    // A rejection without a reason is refused by the library, as on the command line.
    let (_, _, page) = f.send(f.get(&format!("/job/{other}"), Some(&cookie))).await;
    let seen = Fixture::seen(&page);
    let (status, _, body) = f
        .send(f.post(
            &format!("/job/{other}/decision"),
            &cookie,
            &format!("decision=reject&reason=+&seen={seen}&csrf={csrf}"),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("the researcher must be told why"), "{body}");
    assert_eq!(f.state(&other), JobState::Submitted);
}

#[tokio::test]
async fn a_second_console_on_the_same_side_is_refused() {
    let f = low_side().await;
    let err = Console::bind(Options {
        config: f.config.clone(),
        key: None,
        actor: "owner:test".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
    })
    .await
    .err()
    .expect("a second console");
    assert!(err.to_string().contains("another `ferry console`"), "{err}");
    let err = Console::bind(Options {
        config: f.config.clone(),
        key: None,
        actor: "owner:test".into(),
        listen: "0.0.0.0:0".parse().unwrap(),
    })
    .await
    .err()
    .expect("a console on every interface");
    assert!(err.to_string().contains("loopback only"), "{err}");
}
