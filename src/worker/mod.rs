//! The inference worker: loads the bundle, then answers `ToWorker` messages.
//!
//! Runs in a dedicated Web Worker so that loading and labelling never block
//! the page. A panic cannot be recovered inside wasm, so the panic hook tells
//! the page (an `Error` with cause `Crashed`) and the page starts a fresh worker.

mod fetch;
mod loader;

use crate::protocol::{BenchmarkEncoder, ErrorCause, FromWorker, ToWorker};
use integrabner_core::image_input::{self, Radiograph};
use integrabner_models::engine::Engine;
use integrabner_models::image_model::ImageTagger;
use js_sys::{Array, Uint8Array};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

enum State {
    Loading,
    Ready(Box<Engine>),
    Failed(String),
}

/// The image the page shows, decoded once when it was checked and kept for
/// the analyses that name its check request. Only the latest one is kept.
#[derive(Default)]
struct CheckedImage(Option<(u32, Radiograph)>);

impl CheckedImage {
    /// The views of a case that names image `request` (none for `None`).
    fn views(&self, request: Option<u32>) -> Result<&[Radiograph], String> {
        match (request, &self.0) {
            (None, _) => Ok(&[]),
            (Some(r), Some((kept, img))) if r == *kept => Ok(std::slice::from_ref(img)),
            (Some(_), _) => Err(
                "the analysis worker no longer holds this image (it was restarted); choose the image again"
                    .into(),
            ),
        }
    }
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

pub(crate) fn post(message: &FromWorker) {
    // Posting can only fail for uncloneable values; a string always clones.
    let _ = scope().post_message(&JsValue::from_str(&message.to_json()));
}

pub(crate) fn now_ms() -> f64 {
    scope()
        .performance()
        .map(|p| p.now())
        .unwrap_or_else(js_sys::Date::now)
}

/// Entry point of the worker binary.
pub fn run() {
    std::panic::set_hook(Box::new(|info| {
        post(&FromWorker::Error {
            request: None,
            cause: ErrorCause::Crashed,
            message: format!("the analysis worker crashed: {info}"),
        });
    }));
    let state = Rc::new(RefCell::new(State::Loading));
    let handler = {
        let state = state.clone();
        let mut image = CheckedImage::default();
        Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            handle(&state.borrow(), &mut image, event.data())
        })
    };
    scope().set_onmessage(Some(handler.as_ref().unchecked_ref()));
    // The worker lives as long as the page; so does its handler.
    handler.forget();
    wasm_bindgen_futures::spawn_local(async move {
        let started = now_ms();
        match loader::load_bundle().await {
            Ok(loaded) => {
                let ready = FromWorker::Ready {
                    bundle_version: loaded.manifest.version.clone(),
                    vocabulary_version: loaded
                        .manifest
                        .vocabulary_version
                        .clone()
                        .unwrap_or_default(),
                    origin: loaded.origin,
                    load_ms: now_ms() - started,
                    text_model: loaded.engine.report.is_some(),
                    image_model: loaded.engine.image.is_some(),
                };
                *state.borrow_mut() = State::Ready(Box::new(loaded.engine));
                post(&ready);
            }
            Err(message) => {
                *state.borrow_mut() = State::Failed(message.clone());
                post(&FromWorker::Error {
                    request: None,
                    cause: ErrorCause::BundleUnavailable,
                    message,
                });
            }
        }
    });
}

/// A message is either a JSON string or `[json, ArrayBuffer]` for images.
fn handle(state: &State, image: &mut CheckedImage, data: JsValue) {
    let (json, payload) = match data.dyn_ref::<Array>() {
        Some(parts) => (parts.get(0), Some(parts.get(1))),
        None => (data, None),
    };
    let message = match json
        .as_string()
        .map(|s| serde_json::from_str::<ToWorker>(&s))
    {
        Some(Ok(m)) => m,
        _ => {
            post(&FromWorker::Error {
                request: None,
                cause: ErrorCause::NotUnderstood,
                message: "the page sent a message the worker does not understand".into(),
            });
            return;
        }
    };
    let reply = match message {
        ToWorker::Analyze {
            request,
            id,
            text,
            image: shown,
        } => match image.views(shown) {
            Ok(views) => analyze(state, request, &id, &text, views),
            Err(message) => request_error(request, ErrorCause::ImageGone, message),
        },
        ToWorker::Benchmark {
            request,
            text,
            image: shown,
            runs,
            encoder,
        } => match image.views(shown) {
            Ok(views) => benchmark(state, request, &text, views, runs, encoder),
            Err(message) => request_error(request, ErrorCause::ImageGone, message),
        },
        ToWorker::CheckImage { request, .. } => {
            let bytes = payload
                .map(|p| Uint8Array::new(&p).to_vec())
                .unwrap_or_default();
            check_image(image, request, &bytes)
        }
    };
    post(&reply);
}

fn request_error(request: u32, cause: ErrorCause, message: String) -> FromWorker {
    FromWorker::Error {
        request: Some(request),
        cause,
        message,
    }
}

fn ready(state: &State, request: u32) -> Result<&Engine, FromWorker> {
    match state {
        State::Loading => Err(request_error(
            request,
            ErrorCause::StillLoading,
            "the models are still loading; try again in a moment".into(),
        )),
        State::Failed(why) => Err(request_error(
            request,
            ErrorCause::ModelsFailed,
            format!("the models could not be loaded: {why}"),
        )),
        State::Ready(engine) => Ok(engine),
    }
}

fn analyze(state: &State, request: u32, id: &str, text: &str, views: &[Radiograph]) -> FromWorker {
    let engine = match ready(state, request) {
        Ok(e) => e,
        Err(reply) => return reply,
    };
    let started = now_ms();
    match engine.analyse(id, text, views) {
        Ok(mut case) => FromWorker::Result {
            request,
            evidence: engine.evidence(&case),
            note: case.note.take(),
            prediction: engine.prediction(case, true),
            elapsed_ms: now_ms() - started,
        },
        Err(e) => request_error(
            request,
            ErrorCause::AnalysisFailed,
            format!("cannot analyse this case: {e}"),
        ),
    }
}

fn benchmark(
    state: &State,
    request: u32,
    text: &str,
    views: &[Radiograph],
    runs: u32,
    encoder: Option<BenchmarkEncoder>,
) -> FromWorker {
    let engine = match ready(state, request) {
        Ok(e) => e,
        Err(reply) => return reply,
    };
    // A random-weight ResNet-50 in place of the bundle's image model: built
    // before the clock starts.
    let resnet = match (&encoder, &engine.image) {
        (Some(BenchmarkEncoder::Resnet50), Some(image)) => {
            match ImageTagger::random_resnet50(&image.config, 1)
                .map_err(|e| e.to_string())
                .and_then(|t| {
                    Engine::new(engine.rules.clone(), None, Some(t), None)
                        .map_err(|e| e.to_string())
                }) {
                Ok(e) => Some(e),
                Err(e) => {
                    return request_error(
                        request,
                        ErrorCause::BenchmarkUnavailable,
                        format!("cannot build ResNet-50: {e}"),
                    )
                }
            }
        }
        (Some(BenchmarkEncoder::Resnet50), None) => {
            return request_error(
                request,
                ErrorCause::BenchmarkUnavailable,
                "the bundle has no image model to mirror".into(),
            )
        }
        (None, _) => None,
    };
    let engine = resnet.as_ref().unwrap_or(engine);
    let started = now_ms();
    for _ in 0..runs {
        // As Analyze does: the analysis and its output object.
        let analysed = engine
            .analyse("benchmark", text, views)
            .map(|case| engine.prediction(case, true));
        if let Err(e) = analysed {
            return request_error(
                request,
                ErrorCause::AnalysisFailed,
                format!("cannot analyse this case: {e}"),
            );
        }
    }
    let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
    let buffer: js_sys::ArrayBuffer = memory.buffer().unchecked_into();
    FromWorker::Benchmark {
        request,
        runs,
        total_ms: now_ms() - started,
        wasm_memory_bytes: u64::from(buffer.byte_length()),
    }
}

/// Decodes an image and keeps it for the analyses that name `request`.
fn check_image(image: &mut CheckedImage, request: u32, bytes: &[u8]) -> FromWorker {
    match image_input::read(bytes) {
        Ok(img) => {
            let (width, height) = (img.info.width, img.info.height);
            image.0 = Some((request, img));
            FromWorker::ImageChecked {
                request,
                width,
                height,
                sha256: integrabner_core::bundle::sha256_hex(bytes),
            }
        }
        Err(e) => request_error(
            request,
            ErrorCause::ImageRefused,
            format!("cannot use this image: {e}"),
        ),
    }
}
