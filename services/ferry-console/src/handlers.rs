//! Routes, the guard every request passes, and the handlers.
//!
//! A handler's helpers return `Result<T, Response>`: the error is the refusal page itself, made once per request
//! and sent as it is, so boxing it (what clippy's `result_large_err` asks) would buy nothing.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use ferry_core::decision::DecisionKind;
use ferry_core::StoreError;
use ferry_review::escape;
use ferry_transfer::{SideDir, TransferError};

use crate::auth::{self, SignIn};
use crate::{pages, render, App, ConsoleError};

/// The one style sheet (the CSP allows styles from this origin only, and no inline style).
const CSS: &str = include_str!("console.css");

/// The largest request body read (a decision form; reasons are short).
const MAX_BODY: usize = 256 * 1024;

/// The policy every page is served under: nothing but this origin's style sheet and images.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                       base-uri 'none'; frame-ancestors 'none'";

/// The console's routes behind its guard, every response with its security headers.
pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(queue))
        .route("/login", get(login))
        .route("/console.css", get(css))
        .route("/audit", get(audit))
        .route("/job/{id}", get(job))
        .route("/job/{id}/decision", post(decision))
        .route("/job/{id}/file/{n}", get(download))
        .route("/job/{id}/image/{n}", get(image))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .layer(middleware::from_fn(security_headers))
        .with_state(app)
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CSP));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "Cross-Origin-Opener-Policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "Cross-Origin-Resource-Policy",
        HeaderValue::from_static("same-origin"),
    );
    res
}

/// A refusal page with `status`.
fn refusal(status: StatusCode, title: &str, message: &str) -> Response {
    (status, page(pages::message(title, message))).into_response()
}

/// A rendered page as a response.
fn page(markup: maud::Markup) -> Response {
    axum::response::Html(markup.into_string()).into_response()
}

/// Every request: the `Host` must be this console's; then, but for the sign-in, the session cookie; a POST must
/// come from this origin and carry the session's CSRF token.
async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    if !auth::host_is_loopback(&host, app.port) {
        tracing::warn!("refused a request for another host (DNS rebinding?)");
        return refusal(
            StatusCode::FORBIDDEN,
            "Refused",
            "This console answers only requests addressed to its own loopback address.",
        );
    }
    if req.uri().path() == "/login" {
        return next.run(req).await;
    }
    let cookie = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| auth::cookie_value(v).map(str::to_string));
    let Some(cookie) = cookie else {
        return refusal(
            StatusCode::UNAUTHORIZED,
            "Sign in first",
            "Open the sign-in URL that `ferry console` printed.",
        );
    };
    let csrf = {
        let mut auth = app.auth.lock().expect("auth lock");
        match auth.session(&cookie) {
            Some(s) => s.csrf.clone(),
            None => {
                return refusal(
                    StatusCode::UNAUTHORIZED,
                    "Sign in first",
                    "This browser's session is not the console's: open the sign-in URL that `ferry console` \
                     printed (a console restarted prints a new one).",
                )
            }
        }
    };
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    // Under this console's `Referrer-Policy: no-referrer` Chromium sends its own form posts with `Origin: null`;
    // any real origin must be this one, and a browser that says where the request came from must say here.
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok());
    let fetch_site = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|o| o.to_str().ok());
    let cross_origin = origin.is_some_and(|o| o != "null" && o != format!("http://{host}"))
        || fetch_site.is_some_and(|s| s != "same-origin" && s != "none");
    if cross_origin {
        return refusal(
            StatusCode::FORBIDDEN,
            "Refused",
            "This request came from another site's page.",
        );
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Refused",
            "The form is too large.",
        );
    };
    let offered = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !csrf.matches(&offered) {
        return refusal(
            StatusCode::FORBIDDEN,
            "Refused: no valid CSRF token",
            "Nothing was changed. This form did not carry the console's CSRF token; reload the page and try \
             again.",
        );
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

type Params = Query<std::collections::HashMap<String, String>>;

/// `GET /login?token=T`: the one-time token for the session cookie, then the queue.
async fn login(State(app): State<Arc<App>>, Query(q): Params) -> Response {
    let offered = q.get("token").map(String::as_str).unwrap_or("");
    let outcome = app.auth.lock().expect("auth lock").sign_in(offered);
    match outcome {
        SignIn::Ok(cookie) => {
            tracing::info!("the owner signed in to the console");
            let mut res = Redirect::to("/").into_response();
            res.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_str(&auth::set_cookie(&cookie)).expect("hex is a header value"),
            );
            res
        }
        SignIn::Used => refusal(
            StatusCode::FORBIDDEN,
            "This sign-in link was used already",
            "The console's sign-in URL works once. The browser that used it is signed in; to sign in from \
             another, restart `ferry console` for a new URL.",
        ),
        SignIn::Wrong => refusal(
            StatusCode::FORBIDDEN,
            "Wrong sign-in token",
            "Open the exact URL that `ferry console` printed.",
        ),
    }
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

/// Runs `f` on a blocking thread with the side opened afresh (every page shows the store as it is now).
async fn with_side<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&App, &mut SideDir) -> Result<T, Response> + Send + 'static,
) -> Result<T, Response> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        let mut side = SideDir::open(&app.config).map_err(|e| failure(&e.into()))?;
        f(&app, &mut side)
    })
    .await
    .unwrap_or_else(|_| {
        Err(refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Failed",
            "The request failed; the console's log says why.",
        ))
    })
}

/// An error as a page: a decision on a job in another state is a conflict, an unknown job is not found, a
/// refused decision a bad request, anything else the console's fault.
fn failure(e: &ConsoleError) -> Response {
    let text = escape::line(&e.to_string()).into_owned();
    let status = match e {
        ConsoleError::Transfer(TransferError::Store(StoreError::WrongState { .. })) => {
            StatusCode::CONFLICT
        }
        ConsoleError::Transfer(TransferError::JobLookup(_)) => StatusCode::NOT_FOUND,
        ConsoleError::Transfer(TransferError::Store(_) | TransferError::Io { .. }) => {
            tracing::error!(error = %text, "console request failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::BAD_REQUEST,
    };
    refusal(status, "Not done", &text)
}

fn store_failure(e: StoreError) -> Response {
    failure(&TransferError::Store(e).into())
}

/// `GET /` (awaiting review) and `GET /?all=1` (every job).
async fn queue(State(app): State<Arc<App>>, Query(q): Params) -> Response {
    let all = q.contains_key("all");
    let flash = app.take_flash();
    with_side(&app, move |app, side| {
        pages::queue(app, side, all, flash.as_deref())
            .map(page)
            .map_err(store_failure)
    })
    .await
    .into_response()
}

/// `GET /job/ID`.
async fn job(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let flash = app.take_flash();
    with_side(&app, move |app, side| {
        let Some(job) = side.store.job(&id).map_err(store_failure)? else {
            return Err(not_found(&id));
        };
        let csrf = app.csrf();
        pages::job(app, side, &job, &csrf, flash.as_deref())
            .map(page)
            .map_err(store_failure)
    })
    .await
    .into_response()
}

fn not_found(id: &str) -> Response {
    refusal(
        StatusCode::NOT_FOUND,
        "No such job",
        &format!("There is no job {} on this side.", escape::line(id)),
    )
}

/// `GET /audit`.
async fn audit(State(app): State<Arc<App>>) -> Response {
    with_side(&app, move |app, side| {
        pages::audit(app, side).map(page).map_err(store_failure)
    })
    .await
    .into_response()
}

/// The file `n` of a job (in [`ferry_transfer::review::job_files`] order), as the side holds it.
fn job_file(side: &SideDir, id: &str, n: usize) -> Result<(String, Vec<u8>), Response> {
    let Some(job) = side.store.job(id).map_err(store_failure)? else {
        return Err(not_found(id));
    };
    let Some(result) = &job.result else {
        return Err(not_found(id));
    };
    let outputs = side.store.outputs(id).map_err(store_failure)?;
    let files = ferry_transfer::review::job_files(result, &outputs);
    files
        .get(n)
        .map(|(name, data)| (name.clone(), data.to_vec()))
        .ok_or_else(|| {
            refusal(
                StatusCode::NOT_FOUND,
                "No such file",
                "That job has no such file.",
            )
        })
}

/// `GET /job/ID/file/N`: the exact bytes, as an attachment (never shown by the browser).
async fn download(State(app): State<Arc<App>>, Path((id, n)): Path<(String, usize)>) -> Response {
    with_side(&app, move |_, side| {
        let (name, data) = job_file(side, &id, n)?;
        let safe: String = name
            .rsplit('/')
            .next()
            .unwrap_or("file")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let disposition = format!("attachment; filename=\"{safe}\"");
        Ok((
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            data,
        )
            .into_response())
    })
    .await
    .into_response()
}

/// `GET /job/ID/image/N`: a PNG, JPEG or GIF output, by its magic bytes, as that image type; anything else 404.
async fn image(State(app): State<Arc<App>>, Path((id, n)): Path<(String, usize)>) -> Response {
    with_side(&app, move |_, side| {
        let (_, data) = job_file(side, &id, n)?;
        let Some(kind) = render::image_type(&data) else {
            return Err(refusal(
                StatusCode::NOT_FOUND,
                "Not an image",
                "Only PNG, JPEG and GIF outputs are shown as images.",
            ));
        };
        Ok((
            [
                (header::CONTENT_TYPE, kind),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; sandbox",
                ),
            ],
            data,
        )
            .into_response())
    })
    .await
    .into_response()
}

/// `POST /job/ID/decision`: approve, reject, return, withhold or release, through the command line's own
/// functions; refused when the job changed since the page showed it.
async fn decision(State(app): State<Arc<App>>, Path(id): Path<String>, body: Bytes) -> Response {
    let fields: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let done = with_side(&app, move |app, side| {
        let _one = app.deciding.lock().expect("decision lock");
        app.decide(side, &id, &fields).map(|summary| (id, summary))
    })
    .await;
    match done {
        Ok((id, summary)) => {
            tracing::info!(job = %escape::line(&id), "decided in the console");
            app.set_flash(summary);
            Redirect::to(&format!("/job/{id}")).into_response()
        }
        Err(res) => res,
    }
}

impl App {
    /// The session's CSRF token (the guard let the request through, so there is a session).
    pub(crate) fn csrf(&self) -> String {
        let auth = self.auth.lock().expect("auth lock");
        auth.current()
            .map(|s| s.csrf.expose().to_string())
            .unwrap_or_default()
    }

    fn take_flash(&self) -> Option<String> {
        let mut auth = self.auth.lock().expect("auth lock");
        auth.current_mut().and_then(|s| s.flash.take())
    }

    fn set_flash(&self, text: String) {
        let mut auth = self.auth.lock().expect("auth lock");
        if let Some(s) = auth.current_mut() {
            s.flash = Some(text);
        }
    }

    /// One decision from a form's fields; what it did, in the command line's words.
    fn decide(
        &self,
        side: &mut SideDir,
        id: &str,
        fields: &[(String, String)],
    ) -> Result<String, Response> {
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let given = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let Some(job) = side.store.job(id).map_err(store_failure)? else {
            return Err(not_found(id));
        };
        if get("seen") != Some(pages::stamp(&job).as_str()) {
            return Err(refusal(
                StatusCode::CONFLICT,
                "Not decided: the job changed",
                &format!(
                    "Job {} changed since this page showed it: it is now {} (last change {}). Nothing was \
                     decided; reload the job, review it again, and decide then.",
                    escape::line(&job.job_id),
                    job.state,
                    render::when(job.updated_at)
                ),
            ));
        }
        let kind = match get("decision").unwrap_or("") {
            "approve" => DecisionKind::Approve,
            "reject" => DecisionKind::Reject,
            "return" => DecisionKind::Return,
            "withhold" => DecisionKind::Withhold,
            "release" => DecisionKind::Release,
            other => {
                return Err(refusal(
                    StatusCode::BAD_REQUEST,
                    "Not decided",
                    &format!("There is no decision {}.", escape::line(other)),
                ))
            }
        };
        let key = self.key.as_ref();
        let fail = |e: TransferError| failure(&e.into());
        if kind == DecisionKind::Release {
            let withhold: Vec<String> = fields
                .iter()
                .filter(|(n, _)| n == "withhold")
                .map(|(_, v)| v.clone())
                .collect();
            let released = ferry_transfer::review::release(
                side,
                &job.job_id,
                &ferry_transfer::review::ReleaseRequest {
                    withhold: &withhold,
                    reason: given("reason"),
                    override_reason: given("override_reason"),
                    actor: &self.actor,
                    key,
                },
            )
            .map_err(fail)?;
            return Ok(released.summary().join("; "));
        }
        let reason = match kind {
            DecisionKind::Approve => None,
            _ => given("reason"),
        };
        let decided =
            ferry_transfer::review::decide(side, &job.job_id, kind, reason, key, &self.actor)
                .map_err(fail)?;
        Ok(decided.summary())
    }
}
