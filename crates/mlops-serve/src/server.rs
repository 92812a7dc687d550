//! The HTTP service: SageMaker's inference container contract (`GET /ping`,
//! `POST /invocations`), the Open Inference Protocol's REST routes (`/v2/...`, see [`crate::v2`]),
//! plus `GET /version` and Prometheus `GET /metrics`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mlops_train::predict::{Outputs, Predictor};
use serde::Serialize;

use crate::Limits;
use crate::body::{self, Media, Rejection};
use crate::capture::Capture;
use crate::stats::{self, Stats};
use crate::v2;
use mlops_artifacts::capture::Route;

/// Who the served model is, as `/version` and the `/ping` headers report it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Identity {
    /// `NAME@VERSION`, when known (from the registry or a `card.json` beside the artifact).
    pub model: Option<String>,
    pub artifact_sha256: String,
    pub manifest_sha256: Option<String>,
    /// Where the artifact was loaded from.
    pub source: String,
}

/// A model behind the service.
#[derive(Debug)]
pub struct Service {
    pub predictor: Predictor,
    pub identity: Identity,
    pub limits: Limits,
    /// One log line per request on stderr.
    pub log_requests: bool,
    stats: Arc<Stats>,
    /// One permit per prediction thread for large requests ([`Limits::prediction_threads`]).
    prediction_threads: Arc<tokio::sync::Semaphore>,
    /// The signature's features by name, built once (not per JSON body of named rows).
    index: std::collections::HashMap<String, usize>,
    /// Data capture (`--capture`), when on.
    capture: Option<Capture>,
}

impl Service {
    /// How the model reads a request's values.
    fn columns(&self) -> body::Columns<'_> {
        body::Columns {
            features: &self.predictor.bundle.signature.features,
            gaps: self.predictor.bundle.standardizer.takes_gaps(),
            vocabulary: self.predictor.vocabulary(),
            index: Some(&self.index),
        }
    }

    pub fn new(predictor: Predictor, identity: Identity, limits: Limits) -> Self {
        Self {
            index: body::index_of(&predictor.bundle.signature.features),
            predictor,
            identity,
            limits,
            log_requests: true,
            stats: Arc::default(),
            prediction_threads: Arc::new(tokio::sync::Semaphore::new(limits.prediction_threads)),
            capture: None,
        }
    }

    /// The service with data capture on.
    pub fn with_capture(mut self, capture: Capture) -> Self {
        self.capture = Some(capture);
        self
    }

    /// The capture, when on: its counters, and [`Capture::finish`] at the graceful stop.
    pub fn capture(&self) -> Option<&Capture> {
        self.capture.as_ref()
    }

    /// The capture of this request, when it is sampled: its inference id (the caller's header,
    /// else a new one) and content type.
    fn sample(&self, headers: &HeaderMap, route: Route) -> Option<Pending> {
        let capture = self.capture.as_ref()?;
        if !capture.sampled() {
            return None;
        }
        let given = INFERENCE_ID_HEADERS
            .iter()
            .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
            .filter(|id| !id.is_empty() && id.len() <= 256);
        Some(Pending {
            id: given.map_or_else(crate::capture::new_id, str::to_owned),
            route,
            content_type: headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            input: Bytes::new(),
        })
    }

    fn model_name(&self) -> &str {
        self.identity.model.as_deref().unwrap_or("unknown")
    }

    /// The model's name and version in the Open Inference Protocol.
    fn v2_name(&self) -> (&str, Option<&str>) {
        v2::name_and_version(self.identity.model.as_deref())
    }
}

/// The headers a caller names its inference id with (ours, then SageMaker's), and the one the
/// answer carries it back in when the request was captured.
const INFERENCE_ID_HEADERS: [&str; 2] = ["x-inference-id", "x-amzn-sagemaker-inference-id"];

/// A sampled request on its way to the capture: what is known before its answer.
struct Pending {
    id: String,
    route: Route,
    content_type: Option<String>,
    input: Bytes,
}

/// Rows a response carried, for the request log and the metrics.
#[derive(Debug, Clone, Copy)]
struct Served(usize);

/// The routes over `service`.
pub fn router(service: Arc<Service>) -> Router {
    // The body limit is enforced here (413 before the body is buffered) and in `body::parse`.
    let limit = service.limits.max_body_bytes;
    Router::new()
        .route("/ping", get(ping))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .route("/invocations", post(invocations))
        .route("/v2", get(v2_server))
        .route("/v2/health/live", get(v2_live))
        .route("/v2/health/ready", get(v2_ready))
        .route("/v2/models/{name}", get(v2_model))
        .route("/v2/models/{name}/versions/{version}", get(v2_model))
        .route("/v2/models/{name}/ready", get(v2_model_ready))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(v2_model_ready),
        )
        .route("/v2/models/{name}/infer", post(v2_infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(v2_infer))
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(service.clone(), observe))
        .with_state(service)
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish, within the
/// connection limits of [`Limits`].
pub async fn run(
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = service.limits;
    let stats = service.stats.clone();
    crate::connection::serve(
        listener,
        router(service),
        limits,
        move || stats.refused(),
        shutdown,
    )
    .await
}

/// Resolves on SIGTERM (how SageMaker, Kubernetes and `docker stop` stop a container) or
/// Ctrl-C.
pub async fn termination() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = ctrl_c => {},
            () = term => {},
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct E {
        error: String,
    }
    (
        status,
        axum::Json(E {
            error: message.into(),
        }),
    )
        .into_response()
}

fn identity_headers(service: &Service) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    put("x-mlops-model", service.model_name());
    put("x-mlops-artifact-sha256", &service.identity.artifact_sha256);
    if let Some(m) = &service.identity.manifest_sha256 {
        put("x-mlops-manifest-sha256", m);
    }
    h
}

async fn ping(State(service): State<Arc<Service>>) -> Response {
    (StatusCode::OK, identity_headers(&service), "ok\n").into_response()
}

async fn version(State(service): State<Arc<Service>>) -> Response {
    let body = mlops_artifacts::service::ServiceVersion {
        model: service.identity.model.clone(),
        artifact_sha256: service.identity.artifact_sha256.clone(),
        manifest_sha256: service.identity.manifest_sha256.clone(),
        source: service.identity.source.clone(),
        mlops: Some(env!("CARGO_PKG_VERSION").to_owned()),
        signature: Some(service.predictor.bundle.signature.clone()),
        limits: Some(mlops_artifacts::service::ServiceLimits {
            max_body_bytes: service.limits.max_body_bytes as u64,
            max_rows: service.limits.max_rows as u64,
        }),
    };
    (identity_headers(&service), axum::Json(body)).into_response()
}

async fn metrics(State(service): State<Arc<Service>>) -> Response {
    let mut text = service
        .stats
        .render(service.model_name(), &service.identity);
    if let Some(capture) = &service.capture {
        capture.render(&mut text);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn not_found(request: Request) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "no route {} {}; the service answers GET /ping, GET /version, GET /metrics and \
             POST /invocations",
            request.method(),
            request.uri().path()
        ),
    )
}

/// A route asked with a method it does not answer: 405, with the `Allow` header axum adds and
/// the same JSON error body as every other refusal.
async fn wrong_method(request: Request) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} does not answer {}; the service answers GET /ping, GET /version, GET /metrics \
             and POST /invocations",
            request.uri().path(),
            request.method()
        ),
    )
}

/// The request's body, read within the request timeout, or the response that says why not.
async fn read_body(service: &Service, request: Request) -> Result<Bytes, Response> {
    // The body must arrive within the request timeout: a client that sends its head and then
    // a byte now and then would otherwise hold the connection for as long as it likes.
    let read = tokio::time::timeout(
        service.limits.request_timeout,
        Bytes::from_request(request, &()),
    )
    .await;
    match read {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => {
            let status = e.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!(
                    "the body is over the limit of {} bytes; split the rows over several requests",
                    service.limits.max_body_bytes
                )
            } else {
                format!("the body could not be read: {e}")
            };
            Err(error(status, message))
        }
        Err(_) => {
            let mut r = error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {} s (--request-timeout); send it at once",
                    service.limits.request_timeout.as_secs()
                ),
            );
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err(r)
        }
    }
}

/// What a prediction route's work gives: the rows predicted and the answer's bytes.
type Answered = Result<(usize, Vec<u8>), Rejection>;

/// Runs `work` (parsing, the forward pass and writing the answer) where the body's size says,
/// within the cap on prediction threads; `Err` is the response when no thread became free or the
/// work failed.
async fn on_a_prediction_thread<F>(
    service: &Arc<Service>,
    body: Bytes,
    work: F,
) -> Result<Answered, Response>
where
    F: FnOnce(&Service, &[u8]) -> Answered + Send + 'static,
{
    // Parsing and the forward pass are CPU work. A small body (a few milliseconds of it) is
    // answered on the thread that read it: handing it to another thread and back would cost
    // two wake-ups and a cold cache, and so would splitting its operations over rayon's threads
    // (the other requests keep the cores busy). A larger one goes to the blocking pool, so that
    // the async threads stay free for other connections and for `/ping`, and its operations may
    // use every core.
    if body.len() <= INLINE_BODY_BYTES {
        mlops_train::predict::keep_parallel_loops_on_this_thread();
        return Ok(work(service, &body));
    }
    // One thread per large request, as many at once as the limit says; the others wait for a
    // thread, up to the request timeout.
    let waited = tokio::time::timeout(
        service.limits.request_timeout,
        service.prediction_threads.clone().acquire_owned(),
    )
    .await;
    let Ok(Ok(permit)) = waited else {
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "every prediction thread (--prediction-threads {}) stayed busy for {} s; \
                 retry shortly, or send smaller requests",
                service.limits.prediction_threads,
                service.limits.request_timeout.as_secs()
            ),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Err(r);
    };
    let worker = service.clone();
    tokio::task::spawn_blocking(move || {
        let answered = work(&worker, &body);
        drop(permit);
        answered
    })
    .await
    .map_err(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the prediction failed: {e}"),
        )
    })
}

/// The response for a prediction route's outcome, in `media`; a sampled request and its answer
/// go to the capture.
fn answered(
    service: &Service,
    done: Result<Answered, Response>,
    media: &'static str,
    pending: Option<Pending>,
) -> Response {
    match done {
        Ok(Ok((rows, written))) => {
            let written = Bytes::from(written);
            let mut id = None;
            if let (Some(p), Some(capture)) = (pending, &service.capture) {
                id = HeaderValue::from_str(&p.id).ok();
                capture.offer(crate::capture::Entry {
                    id: p.id,
                    at: std::time::SystemTime::now(),
                    route: p.route,
                    rows: rows as u64,
                    content_type: p.content_type,
                    input: p.input,
                    answer_type: media,
                    output: written.clone(),
                });
            }
            let mut r = (
                [(header::CONTENT_TYPE, HeaderValue::from_static(media))],
                Body::from(written),
            )
                .into_response();
            if let Some(id) = id {
                r.headers_mut().insert("x-inference-id", id);
            }
            r.extensions_mut().insert(Served(rows));
            r
        }
        Ok(Err(rejection)) => error(
            StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::BAD_REQUEST),
            rejection.message,
        ),
        Err(response) => response,
    }
}

async fn invocations(State(service): State<Arc<Service>>, request: Request) -> Response {
    // The two headers the answer depends on, read before the body takes the request.
    let headers = request.headers();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let Some(answer_media) = body::answer_media(accept) else {
        return error(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "cannot answer in `{}`; accept application/json (labels and probabilities, or values) or text/csv (one prediction per line)",
                accept.unwrap_or_default()
            ),
        );
    };
    let mut pending = service.sample(headers, Route::Invocations);
    let body = match read_body(&service, request).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Some(p) = &mut pending {
        p.input = body.clone();
    }
    let done = on_a_prediction_thread(&service, body, move |s, b| {
        answer(s, content_type.as_deref(), answer_media, b)
    })
    .await;
    let media = match answer_media {
        Media::Json => "application/json",
        Media::Csv => "text/csv",
    };
    answered(&service, done, media, pending)
}

/// `GET /v2`: the server's metadata.
async fn v2_server() -> Response {
    axum::Json(serde_json::json!({
        "name": "mlops",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": [],
    }))
    .into_response()
}

/// `GET /v2/health/live`: the process answers.
async fn v2_live() -> Response {
    axum::Json(serde_json::json!({ "live": true })).into_response()
}

/// `GET /v2/health/ready`: the model is loaded (the service starts listening only then).
async fn v2_ready() -> Response {
    axum::Json(serde_json::json!({ "ready": true })).into_response()
}

/// A 404 when the path names another model or version than the one served.
fn v2_other_model(service: &Service, path: &HashMap<String, String>) -> Option<Response> {
    let (name, version) = service.v2_name();
    let asked = path.get("name").map_or("", String::as_str);
    if asked != name {
        return Some(error(
            StatusCode::NOT_FOUND,
            format!("model `{asked}` is not served here; this service serves `{name}`"),
        ));
    }
    match path.get("version") {
        Some(v) if Some(v.as_str()) != version => Some(error(
            StatusCode::NOT_FOUND,
            format!(
                "version `{v}` of `{name}` is not served here; this service serves {}",
                version.map_or("an unnumbered model".to_owned(), |v| format!(
                    "version `{v}`"
                ))
            ),
        )),
        _ => None,
    }
}

/// `GET /v2/models/{name}[/versions/{version}]`: the model's metadata.
async fn v2_model(
    State(service): State<Arc<Service>>,
    Path(path): Path<HashMap<String, String>>,
) -> Response {
    if let Some(r) = v2_other_model(&service, &path) {
        return r;
    }
    let (name, version) = service.v2_name();
    axum::Json(v2::metadata(
        name,
        version,
        &service.predictor.bundle.signature,
    ))
    .into_response()
}

/// `GET /v2/models/{name}[/versions/{version}]/ready`.
async fn v2_model_ready(
    State(service): State<Arc<Service>>,
    Path(path): Path<HashMap<String, String>>,
) -> Response {
    if let Some(r) = v2_other_model(&service, &path) {
        return r;
    }
    let (name, _) = service.v2_name();
    axum::Json(serde_json::json!({ "name": name, "ready": true })).into_response()
}

/// `POST /v2/models/{name}[/versions/{version}]/infer`.
async fn v2_infer(
    State(service): State<Arc<Service>>,
    Path(path): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    if let Some(r) = v2_other_model(&service, &path) {
        return r;
    }
    let mut pending = service.sample(request.headers(), Route::V2);
    let body = match read_body(&service, request).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Some(p) = &mut pending {
        p.input = body.clone();
    }
    let done = on_a_prediction_thread(&service, body, v2_answer).await;
    answered(&service, done, "application/json", pending)
}

/// Parses a V2 inference request, predicts, and writes the V2 response: (rows, body).
fn v2_answer(service: &Service, body: &[u8]) -> Answered {
    let request: v2::InferRequest = serde_json::from_slice(body).map_err(|e| Rejection {
        status: 400,
        message: format!("the inference request is not accepted: {e}"),
    })?;
    let signature = &service.predictor.bundle.signature;
    let batch = v2::batch(&request, service.columns(), service.limits)?;
    let predicted = service.predictor.predict(&batch.x).map_err(|e| Rejection {
        status: 500,
        message: format!("the model could not predict: {e}"),
    })?;
    let outputs = v2::outputs(
        request.outputs.as_deref(),
        signature.classes.as_deref(),
        &predicted,
    )?;
    let (model_name, model_version) = service.v2_name();
    let written = serde_json::to_vec(&v2::InferResponse {
        model_name,
        model_version,
        id: request.id,
        outputs,
    })
    .unwrap_or_default();
    Ok((batch.rows, written))
}

/// The largest body answered on the async thread that read it (about 900 rows of 64 small
/// numbers; a few milliseconds of parsing and prediction).
const INLINE_BODY_BYTES: usize = 128 * 1024;

/// Parses, predicts and writes the answer in `answer_media`: (rows, body).
fn answer(
    service: &Service,
    content_type: Option<&str>,
    answer_media: Media,
    body: &[u8],
) -> Result<(usize, Vec<u8>), Rejection> {
    let media = Media::of(content_type)?;
    let signature = &service.predictor.bundle.signature;
    let batch = body::parse(media, body, service.columns(), service.limits)?;
    let outputs = service.predictor.predict(&batch.x).map_err(|e| Rejection {
        status: 500,
        message: format!("the model could not predict: {e}"),
    })?;
    let classes = signature.classes.as_deref();
    let written = match answer_media {
        Media::Json => render(service.model_name(), classes, &outputs),
        Media::Csv => render_csv(classes, &outputs),
    };
    Ok((batch.rows, written))
}

/// One line per row, no header: the predicted label (quoted when it needs to be) or the value,
/// written as the shortest text that reads back as the same `f32`.
pub fn render_csv(classes: Option<&[String]>, outputs: &Outputs) -> Vec<u8> {
    let mut out = Vec::new();
    match outputs {
        Outputs::Classes { index, .. } => {
            // Each class's line once, quoted by the csv writer where CSV needs it.
            let lines: Vec<Vec<u8>> = classes
                .unwrap_or(&[])
                .iter()
                .map(|name| {
                    let mut writer = csv::Writer::from_writer(Vec::new());
                    // Writing to memory cannot fail.
                    let _ = writer.write_record([name]);
                    writer.into_inner().unwrap_or_default()
                })
                .collect();
            out.reserve(index.len() * 4);
            for &i in index {
                out.extend_from_slice(lines.get(i).map_or(&b"\n"[..], Vec::as_slice));
            }
        }
        Outputs::Values(values) => {
            let mut number = zmij::Buffer::new();
            out.reserve(values.len() * 12);
            for v in values {
                if v.is_finite() {
                    out.extend_from_slice(number.format_finite(*v).as_bytes());
                } else {
                    out.extend_from_slice(v.to_string().as_bytes());
                }
                out.push(b'\n');
            }
        }
    }
    out
}

/// The label of class `index` (empty when the signature has no such class).
pub(crate) fn label_of(classes: Option<&[String]>, index: usize) -> &str {
    classes
        .and_then(|names| names.get(index))
        .map_or("", String::as_str)
}

/// `{"model": ..., "classes": [...], "predictions": [{"label": ..., "probabilities": [...]}]}` or
/// `{"model": ..., "predictions": [{"value": ...}]}`.
pub fn render(model: &str, classes: Option<&[String]>, outputs: &Outputs) -> Vec<u8> {
    #[derive(Serialize)]
    struct Class<'a> {
        label: &'a str,
        probabilities: &'a [f32],
    }
    #[derive(Serialize)]
    struct Value {
        value: f32,
    }
    #[derive(Serialize)]
    struct Answer<'a, P> {
        model: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        classes: Option<&'a [String]>,
        predictions: Vec<P>,
    }
    let written = match outputs {
        Outputs::Classes {
            index,
            probabilities,
            classes: k,
        } => {
            let predictions = index
                .iter()
                .zip(probabilities.chunks((*k).max(1)))
                .map(|(&i, p)| Class {
                    label: label_of(classes, i),
                    probabilities: p,
                })
                .collect();
            serde_json::to_vec(&Answer {
                model,
                classes,
                predictions,
            })
        }
        Outputs::Values(values) => serde_json::to_vec(&Answer {
            model,
            classes: None,
            predictions: values.iter().map(|&value| Value { value }).collect(),
        }),
    };
    written.unwrap_or_default()
}

/// Counts every request and, if asked, logs it: time, method, path, status, rows, duration.
async fn observe(State(service): State<Arc<Service>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = stats::route(request.uri().path());
    // The method and path are kept only for the request log.
    let logged = service
        .log_requests
        .then(|| (request.method().clone(), request.uri().path().to_owned()));
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let rows = response.extensions().get::<Served>().map_or(0, |s| s.0);
    let status = response.status().as_u16();
    service.stats.record(route, status, rows, elapsed);
    if let Some((method, path)) = logged {
        // The path is the client's text: printed neutral, in case the log is an Actions log.
        eprintln!(
            "{} {method} {} {status} {rows} rows {:.2} ms",
            mlops_registry::now_rfc3339(),
            mlops_actions::neutral(&path, false),
            elapsed.as_secs_f64() * 1000.0
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_answers_quote_the_labels_that_need_it() {
        let classes = [
            "a,b".to_owned(),
            "say \"hi\"".to_owned(),
            String::new(),
            "7".to_owned(),
        ];
        let outputs = Outputs::Classes {
            index: vec![0, 1, 2, 3],
            probabilities: vec![0.25; 16],
            classes: 4,
        };
        let written = render_csv(Some(&classes), &outputs);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(&written[..]);
        let back: Vec<String> = reader
            .records()
            .map(|r| r.expect("record")[0].to_owned())
            .collect();
        assert_eq!(back, classes);
        let values = render_csv(None, &Outputs::Values(vec![1.5, -0.1]));
        assert_eq!(values, b"1.5\n-0.1\n");
    }
}
