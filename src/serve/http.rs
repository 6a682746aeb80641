//! HTTP over the server's core (`app`): the one list of routes, their JSON answers, each of the
//! core's refusals as a status, and the layers every request passes: the size of its head,
//! the request count, the time limit, the token check and the body limit.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Multipart, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::app::{App, Extras, PredictError, Predicted, ReloadRefused};
use super::metrics::RequestLabels;
use crate::explain::{Method as ExplainMethod, Target};

/// The web page: plain HTML, CSS and JavaScript in one file, served from the binary.
const PAGE: &str = include_str!("page.html");

/// One route: its path, its method, whether it answers without the token, and its handler.
struct Route {
    path: &'static str,
    method: Method,
    open: bool,
    handler: MethodRouter<Arc<App>>,
}

/// Every route the server has. The router, the token check, the 404 and 405 answers and the
/// request count's labels all come from this list.
fn routes() -> Vec<Route> {
    let route = |path, method: Method, open, handler| Route {
        path,
        method,
        open,
        handler,
    };
    vec![
        // The page asks for the token and sends it with its own requests; probes need none.
        route("/", Method::GET, true, get(page)),
        route("/v1/predict", Method::POST, false, post(predict)),
        route("/v1/explain", Method::POST, false, post(explain)),
        route("/v1/model", Method::GET, false, get(model)),
        route("/v1/reload", Method::POST, false, post(reload)),
        route("/healthz", Method::GET, true, get(healthz)),
        route("/readyz", Method::GET, false, get(readyz)),
        route("/metrics", Method::GET, false, get(metrics)),
    ]
}

/// What the layers and fallbacks know of the routes: (method, path, open) of each.
type RouteList = Arc<Vec<(Method, &'static str, bool)>>;

/// The server's routes and layers.
pub fn router(app: Arc<App>) -> Router {
    let body_limit = app.limits.body_bytes;
    let mut router = Router::new();
    let mut list = Vec::new();
    for route in routes() {
        list.push((route.method.clone(), route.path, route.open));
        router = router.route(route.path, route.handler);
    }
    let list: RouteList = Arc::new(list);
    let (missing, wrong) = (list.clone(), list.clone());
    router
        .fallback(move |request: Request| not_found(request, missing.clone()))
        .method_not_allowed_fallback(move |method: Method, request: Request| {
            method_not_allowed(method, request, wrong.clone())
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            (app.clone(), list),
            check_token,
        ))
        .layer(middleware::from_fn_with_state(app.clone(), time_limit))
        .layer(middleware::from_fn_with_state(app.clone(), count))
        .layer(middleware::from_fn(check_head))
        .with_state(app)
}

/// An error answer: a status and one line saying what is wrong and what to do, as JSON
/// (`{"error": "…"}`).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after_s: Option<u64>,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// A `400 Bad Request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// A `503` that tells the client when to try again.
    pub fn busy(message: impl Into<String>, retry_after_s: u64) -> Self {
        Self {
            retry_after_s: Some(retry_after_s),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }
}

/// Each reason the core gives for not answering, as the status that says it.
impl From<PredictError> for ApiError {
    fn from(err: PredictError) -> Self {
        let message = err.to_string();
        match err {
            PredictError::TopOutOfRange { .. }
            | PredictError::ClassOutOfRange { .. }
            | PredictError::NoInvert(_)
            | PredictError::Unreadable(_) => Self::bad_request(message),
            PredictError::Busy | PredictError::Stopping => Self::busy(message, 1),
            PredictError::ReaderCrashed | PredictError::ModelFailed(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
            }
        }
    }
}

/// A refused reload: the record in the run directory conflicts with the served one.
impl From<ReloadRefused> for ApiError {
    fn from(err: ReloadRefused) -> Self {
        Self::new(StatusCode::CONFLICT, err.to_string())
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            error: &self.message,
        });
        let mut response = (self.status, body).into_response();
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(app): State<Arc<App>>) -> Result<&'static str, ApiError> {
    match app.is_ready() {
        true => Ok("ready\n"),
        false => Err(ApiError::busy("the server is stopping", 1)),
    }
}

async fn model(State(app): State<Arc<App>>) -> Response {
    Json(app.info()).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], app.metrics.render()).into_response()
}

async fn reload(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    if app.token().is_none() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "reloading over HTTP needs a token (start the server with --token-file FILE); \
             or send the server SIGHUP",
        ));
    }
    let info = app.reload("POST /v1/reload").await?;
    Ok(Json(info).into_response())
}

/// The longest request target (path and query) the server reads.
const MAX_URI_BYTES: usize = 8 << 10;
/// The most header bytes (names and values) the server reads.
const MAX_HEADER_BYTES: usize = 64 << 10;
/// The most headers the server reads.
const MAX_HEADERS: usize = 100;
/// hyper's own limits, above ours: up to them a request over ours is parsed and answered in
/// JSON here; beyond them hyper answers 414 or 431 itself, with an empty body.
pub const HYPER_MAX_HEADERS: usize = 1000;

/// Answers `414` or `431`, in JSON, to a request whose target or headers are over the limits.
async fn check_head(request: Request, next: Next) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!(
                "the request's URL is {target} bytes long, over the server's limit of {} KiB; \
                 send the image in the body, not in the URL",
                MAX_URI_BYTES >> 10
            ),
        )
        .into_response();
    }
    let headers = request.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "the request has {} headers of {bytes} bytes, over the server's limit of \
                 {MAX_HEADERS} headers and {} KiB; send fewer or smaller headers",
                headers.len(),
                MAX_HEADER_BYTES >> 10
            ),
        )
        .into_response();
    }
    next.run(request).await
}

/// The query of `POST /v1/predict` and `POST /v1/explain`.
#[derive(Debug, Deserialize)]
struct PredictQuery {
    /// How many classes to answer (default 3).
    top: Option<usize>,
    /// Light-on-dark for Fashion-MNIST runs, as `infer --invert`.
    #[serde(default)]
    invert: bool,
    /// Also answer the image as the network saw it, as a PNG data URL.
    #[serde(default)]
    preview: bool,
    /// `/v1/explain`: the class to explain (default: the top one).
    class: Option<usize>,
    /// `/v1/explain`: `gradcam` (default) or `gradcam++`.
    method: Option<String>,
}

/// The method `?method=` names. A `+` in a query string reads as a space, and no method's name
/// has one, so spaces are read back as the `+` of `gradcam++` typed by hand.
fn method(query: &PredictQuery) -> Result<ExplainMethod, ApiError> {
    let Some(name) = &query.method else {
        return Ok(ExplainMethod::default());
    };
    ExplainMethod::from_name(&name.replace(' ', "+")).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown method `{name}`: use method=gradcam or method=gradcam%2B%2B (Grad-CAM++)"
        ))
    })
}

async fn predict(
    State(app): State<Arc<App>>,
    query: Result<Query<PredictQuery>, QueryRejection>,
    request: Request,
) -> Result<Json<Predicted>, ApiError> {
    answer(app, query, request, false).await
}

/// A prediction with the Grad-CAM map of one class (`?class=K`, default the top one).
async fn explain(
    State(app): State<Arc<App>>,
    query: Result<Query<PredictQuery>, QueryRejection>,
    request: Request,
) -> Result<Json<Predicted>, ApiError> {
    answer(app, query, request, true).await
}

async fn answer(
    app: Arc<App>,
    query: Result<Query<PredictQuery>, QueryRejection>,
    request: Request,
    explain: bool,
) -> Result<Json<Predicted>, ApiError> {
    let arrived = Instant::now();
    let Query(query) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "bad query ({}): use ?top=K (a whole number), &invert=true, &preview=true{}",
            e.body_text(),
            if explain {
                ", &class=K (a class index), &method=gradcam or gradcam%2B%2B"
            } else {
                ""
            }
        ))
    })?;
    if (query.class.is_some() || query.method.is_some()) && !explain {
        return Err(ApiError::bad_request(
            "class=K and method=M ask for an explanation: post to /v1/explain?class=K",
        ));
    }
    let method = method(&query)?;
    let body = image_bytes(request, app.limits.body_bytes).await?;
    let extras = Extras {
        invert: query.invert,
        preview: query.preview,
        explain: explain.then_some(Target {
            class: query.class,
            method,
        }),
    };
    let answer = app
        .predict(body, query.top.unwrap_or(3), extras, arrived)
        .await
        .map_err(ApiError::from)?;
    app.metrics.latency.observe(arrived.elapsed().as_secs_f64());
    Ok(Json(answer))
}

/// The image a request carries: the raw body, or the first file of a multipart form.
async fn image_bytes(request: Request, limit: usize) -> Result<Bytes, ApiError> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("multipart/form-data"));
    let bytes = if multipart {
        form_file(request, limit).await?
    } else {
        Bytes::from_request(request, &())
            .await
            .map_err(|e| body_error(e.status(), &e.body_text(), "cannot read the body", limit))?
    };
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "the body is empty: send an image file (PNG, JPEG, …) as the body, or as a file \
             in a multipart form",
        ));
    }
    Ok(bytes)
}

/// The one file field of a multipart form; a second one is refused rather than ignored.
async fn form_file(request: Request, limit: usize) -> Result<Bytes, ApiError> {
    let bad_form = |status, text: &str| body_error(status, text, "bad multipart form", limit);
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|e| bad_form(e.status(), &e.body_text()))?;
    let mut image = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| bad_form(e.status(), &e.body_text()))?
    {
        if field.file_name().is_none() {
            continue;
        }
        if image.is_some() {
            return Err(ApiError::bad_request(
                "the multipart form has more than one file: send one image per request",
            ));
        }
        let bytes = field
            .bytes()
            .await
            .map_err(|e| bad_form(e.status(), &e.body_text()))?;
        image = Some(bytes);
    }
    image.ok_or_else(|| {
        ApiError::bad_request("the multipart form has no file: send the image as a file field")
    })
}

/// A body that could not be read: `413` over the body limit, else `400` with `what` and the
/// reason.
fn body_error(status: StatusCode, reason: &str, what: &str, limit: usize) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            status,
            format!(
                "the body is over the server's limit of {} MiB; send a smaller image, or \
                 start the server with a larger --max-body-mib",
                limit >> 20
            ),
        );
    }
    ApiError::bad_request(format!("{what}: {reason}"))
}

async fn not_found(request: Request, routes: RouteList) -> ApiError {
    let listed: Vec<String> = routes
        .iter()
        .map(|(method, path, _)| format!("{method} {path}"))
        .collect();
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no such path: {}; the server has {}",
            request.uri().path(),
            listed.join(", ")
        ),
    )
}

async fn method_not_allowed(method: Method, request: Request, routes: RouteList) -> ApiError {
    let path = request.uri().path();
    let allowed: Vec<String> = routes
        .iter()
        .filter(|(_, p, _)| *p == path)
        .map(|(m, _, _)| m.to_string())
        .collect();
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{path} does not take {method}; use {}",
            allowed.join(" or ")
        ),
    )
}

/// Refuses requests without the token, when the server has one, but on the routes listed as
/// open.
async fn check_token(
    State((app, routes)): State<(Arc<App>, RouteList)>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let open = routes.iter().any(|(_, p, open)| *open && *p == path);
    if let Some(token) = app.token().filter(|_| !open) {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong token: send the header `Authorization: Bearer <token>` with \
                 the token of the server's --token-file",
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// The token of an `Authorization` value: its scheme is `Bearer` in any case (RFC 7235).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
}

/// Answers `408` to a request that takes longer than the limit, reading its body included: a
/// client that sends a byte a second is dropped.
async fn time_limit(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let limit = app.limits.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request took over {} s (a slow upload, or a server too busy to answer in \
                 time); send it faster or retry later, or start the server with a larger \
                 --request-timeout-s",
                limit.as_secs_f64()
            ),
        )
        .into_response(),
    }
}

/// Counts every request by route (the one the router matched; `other` when none) and status.
async fn count(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("other".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    app.metrics
        .requests
        .get_or_create(&RequestLabels {
            path,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
