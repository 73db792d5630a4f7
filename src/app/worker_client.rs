//! The page's side of the worker: starts it, restarts it after a crash, and
//! turns its messages into updates of the page state.

use super::state::{AppState, Phase};
use crate::protocol::{ErrorScope, FromWorker, ToWorker, WORKER_SCRIPT};
use futures_channel::oneshot;
use integrabner_core::Prediction;
use integrabner_models::engine::Evidence;
use js_sys::{Array, Uint8Array};
use leptos::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use web_sys::{ErrorEvent, MessageEvent, Worker};

/// Crashes in a row after which the page stops restarting the worker.
const MAX_RESTARTS: u32 = 3;

/// A started worker and the handlers it calls, which must live as long as it.
struct Running {
    worker: Worker,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(ErrorEvent)>,
}

struct Inner {
    running: RefCell<Option<Running>>,
    next_request: Cell<u32>,
    crashes: Cell<u32>,
    /// Every request's awaiting caller. Dropped senders tell the caller the
    /// worker is gone.
    waiters: RefCell<HashMap<u32, oneshot::Sender<FromWorker>>>,
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyError {
    /// There is no worker to ask (it could not start, or stopped for good).
    NotRunning,
    /// The worker stopped (crashed or was restarted) before it answered;
    /// the crash has its own notice.
    Stopped,
    /// The worker refused the request, saying why.
    Refused(String),
    /// The worker answered with a reply of another request kind.
    Unexpected(String),
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Self::NotRunning => f.write_str("the analysis worker is not running"),
            Self::Stopped => f.write_str("the analysis worker stopped before it answered"),
            Self::Refused(why) => f.write_str(why),
            Self::Unexpected(what) => write!(f, "unexpected reply from the worker: {what}"),
        }
    }
}

/// A request on its way to the worker: its number, and its reply to await.
pub struct Sent {
    pub request: u32,
    reply: oneshot::Receiver<FromWorker>,
}

impl Sent {
    /// The worker's reply; its refusal is an `Err`.
    pub async fn reply(self) -> Result<FromWorker, ReplyError> {
        match self.reply.await {
            Ok(FromWorker::Error { message, .. }) => Err(ReplyError::Refused(message)),
            Ok(reply) => Ok(reply),
            Err(_) => Err(ReplyError::Stopped),
        }
    }
}

/// An image the worker decoded and keeps for the analyses that name
/// `request`.
pub struct CheckedImage {
    pub request: u32,
    pub width: u32,
    pub height: u32,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
}

/// What the worker made of a case.
pub struct Analysed {
    pub request: u32,
    pub prediction: Prediction,
    pub evidence: Evidence,
    pub note: Option<String>,
    pub elapsed_ms: f64,
}

#[derive(Clone)]
pub struct WorkerClient {
    inner: Rc<Inner>,
    state: AppState,
}

impl WorkerClient {
    pub fn start(state: AppState) -> Self {
        let client = Self {
            inner: Rc::new(Inner {
                running: RefCell::new(None),
                next_request: Cell::new(0),
                crashes: Cell::new(0),
                waiters: RefCell::new(HashMap::new()),
            }),
            state,
        };
        client.spawn();
        client
    }

    /// (Re)starts the worker; the old one, if any, is terminated.
    pub fn spawn(&self) {
        if let Some(old) = self.inner.running.borrow_mut().take() {
            old.worker.terminate();
        }
        self.inner.waiters.borrow_mut().clear();
        self.state.set_phase(Phase::Loading, "Loading models…");
        self.state.progress.set(None);
        let worker = match Worker::new(WORKER_SCRIPT) {
            Ok(w) => w,
            Err(e) => {
                self.state.set_phase(
                    Phase::Error,
                    &format!("This browser cannot start the analysis worker: {e:?}"),
                );
                return;
            }
        };
        let on_message = {
            let client = self.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                match event
                    .data()
                    .as_string()
                    .map(|s| serde_json::from_str::<FromWorker>(&s))
                {
                    Some(Ok(message)) => client.receive(message),
                    _ => client.crashed("the analysis worker sent an unreadable message"),
                }
            })
        };
        let on_error = {
            let client = self.clone();
            Closure::<dyn FnMut(ErrorEvent)>::new(move |event: ErrorEvent| {
                client.crashed(&format!("the analysis worker failed: {}", event.message()))
            })
        };
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        *self.inner.running.borrow_mut() = Some(Running {
            worker,
            _on_message: on_message,
            _on_error: on_error,
        });
    }

    fn next_request(&self) -> u32 {
        let n = self.inner.next_request.get().wrapping_add(1);
        self.inner.next_request.set(n);
        n
    }

    /// Posts `message` (with `transfer`red buffers) and registers its
    /// awaited reply before anything can answer it.
    fn send(&self, request: u32, message: &ToWorker, transfer: Option<&JsValue>) -> Option<Sent> {
        let json = JsValue::from_str(&message.to_json());
        let running = self.inner.running.borrow();
        let worker = &running.as_ref()?.worker;
        match transfer {
            Some(buffer) => worker
                .post_message_with_transfer(&Array::of2(&json, buffer), &Array::of1(buffer))
                .ok()?,
            None => worker.post_message(&json).ok()?,
        }
        let (send, reply) = oneshot::channel();
        self.inner.waiters.borrow_mut().insert(request, send);
        Some(Sent { request, reply })
    }

    /// Asks for a case: the report `text` and the image the worker checked
    /// as request `image`.
    pub fn analyze(&self, id: &str, text: String, image: Option<u32>) -> Option<Sent> {
        let request = self.next_request();
        let message = ToWorker::Analyze {
            request,
            id: id.to_string(),
            text,
            image,
        };
        self.send(request, &message, None)
    }

    /// Sends the image's bytes (transferred, not copied) for checking.
    pub fn check_image(&self, name: &str, bytes: &Uint8Array) -> Option<Sent> {
        let request = self.next_request();
        let message = ToWorker::CheckImage {
            request,
            name: name.to_string(),
        };
        self.send(request, &message, Some(&bytes.buffer()))
    }

    /// Checks an image and keeps it in the worker for the next analysis;
    /// returns the request that names it.
    pub async fn checked_image(&self, name: &str, bytes: &Uint8Array) -> Result<u32, ReplyError> {
        let sent = self
            .check_image(name, bytes)
            .ok_or(ReplyError::NotRunning)?;
        Ok(Self::image_checked(sent).await?.request)
    }

    /// What the worker found of the image a sent `CheckImage` request carried.
    pub async fn image_checked(sent: Sent) -> Result<CheckedImage, ReplyError> {
        match sent.reply().await? {
            FromWorker::ImageChecked {
                request,
                width,
                height,
                sha256,
            } => Ok(CheckedImage {
                request,
                width,
                height,
                sha256,
            }),
            other => Err(ReplyError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Analyses a case.
    pub async fn analysis(
        &self,
        id: &str,
        text: String,
        image: Option<u32>,
    ) -> Result<Analysed, ReplyError> {
        let sent = self
            .analyze(id, text, image)
            .ok_or(ReplyError::NotRunning)?;
        Self::analysed(sent).await
    }

    /// The analysis a sent `Analyze` request answers with.
    pub async fn analysed(sent: Sent) -> Result<Analysed, ReplyError> {
        match sent.reply().await? {
            FromWorker::Result {
                request,
                prediction,
                evidence,
                note,
                elapsed_ms,
            } => Ok(Analysed {
                request,
                prediction,
                evidence,
                note,
                elapsed_ms,
            }),
            other => Err(ReplyError::Unexpected(format!("{other:?}"))),
        }
    }

    fn crashed(&self, why: &str) {
        let crashes = self.inner.crashes.get() + 1;
        self.inner.crashes.set(crashes);
        if crashes > MAX_RESTARTS {
            self.state.set_phase(
                Phase::Error,
                &format!("{why}. It stopped {crashes} times in a row; reload the page to try again. Your report is still in the box."),
            );
            return;
        }
        // Not from inside the crashed worker's own message handler, which
        // `spawn` drops.
        let client = self.clone();
        wasm_bindgen_futures::spawn_local(async move { client.spawn() });
        self.state.notice.set(Some(format!(
            "{why}. A new worker was started; your report is still in the box."
        )));
    }

    fn receive(&self, message: FromWorker) {
        let awaited = match &message {
            FromWorker::Result { request, .. } | FromWorker::ImageChecked { request, .. } => {
                self.inner.waiters.borrow_mut().remove(request)
            }
            FromWorker::Error {
                request: Some(request),
                cause,
                ..
            } if cause.scope() == ErrorScope::Request => {
                self.inner.waiters.borrow_mut().remove(request)
            }
            _ => None,
        };
        if let Some(waiter) = awaited {
            self.inner.crashes.set(0);
            let _ = waiter.send(message);
            return;
        }
        let state = &self.state;
        match message {
            FromWorker::Progress { loaded, total, .. } => state.progress.set(Some((loaded, total))),
            FromWorker::Ready {
                bundle_version,
                vocabulary_version,
                origin,
                load_ms,
                text_model,
                image_model,
            } => {
                state.bundle.set(Some(super::state::BundleInfo {
                    version: bundle_version,
                    vocabulary_version,
                    origin,
                    load_ms,
                    text_model,
                    image_model,
                }));
                state.set_phase(Phase::Ready, "Models ready");
            }
            // Replies to requests nobody awaits any more (a restarted
            // worker's), and benchmarks, which only the harness asks for
            // from its own worker.
            FromWorker::Result { .. }
            | FromWorker::ImageChecked { .. }
            | FromWorker::Benchmark { .. } => {}
            FromWorker::Error {
                request,
                cause,
                message,
            } => match cause.scope() {
                ErrorScope::Request => state.request_failed(request, &message),
                ErrorScope::Bundle => {
                    self.inner.waiters.borrow_mut().clear();
                    state.set_phase(Phase::Error, &message)
                }
                ErrorScope::Crash => self.crashed(&message),
            },
        }
    }
}
