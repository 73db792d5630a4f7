//! Everything the page shows, as signals; the worker client and the views
//! both go through these methods, so the status rules live in one place.

use super::worker_client::{Analysed, CheckedImage, ReplyError};
use crate::protocol::BundleOrigin;
use integrabner_core::Prediction;
use integrabner_models::engine::Evidence;
use leptos::prelude::*;

/// The `data-state` of `#status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Loading,
    Ready,
    Busy,
    Error,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loading => "loading",
            Self::Ready => "ready",
            Self::Busy => "busy",
            Self::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BundleInfo {
    pub version: String,
    pub vocabulary_version: String,
    pub origin: BundleOrigin,
    pub load_ms: f64,
    pub text_model: bool,
    pub image_model: bool,
}

/// An image by what it is, not by where it is shown: its file name and the
/// SHA-256 of its bytes (computed by the worker that decoded them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageIdentity {
    pub name: String,
    pub sha256: String,
}

/// What an analysis read: every result carries its inputs, and the page
/// shows (and exports) a result only while the same inputs are on screen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inputs {
    pub text: String,
    pub image: Option<ImageIdentity>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// The worker request that produced it; lets automation tell results apart.
    pub request: u32,
    pub inputs: Inputs,
    pub prediction: Prediction,
    pub evidence: Evidence,
    pub elapsed_ms: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImageView {
    /// The worker request that checked it: analyses name the image by it.
    pub request: u32,
    /// A `blob:` URL of the user's file; it never leaves the page.
    pub url: String,
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub sha256: String,
}

impl ImageView {
    pub fn identity(&self) -> ImageIdentity {
        ImageIdentity {
            name: self.name.clone(),
            sha256: self.sha256.clone(),
        }
    }
}

#[derive(Clone, Copy)]
pub struct AppState {
    pub phase: RwSignal<Phase>,
    pub status_text: RwSignal<String>,
    pub progress: RwSignal<Option<(u64, u64)>>,
    pub bundle: RwSignal<Option<BundleInfo>>,
    /// A message about the last action (bad input, restarted worker).
    pub notice: RwSignal<Option<String>>,
    /// The report in the text box.
    pub report: RwSignal<String>,
    /// The request being analysed and what it reads.
    pub pending: RwSignal<Option<(u32, Inputs)>>,
    /// The latest analysis, whatever is on screen now.
    pub result: RwSignal<Option<Analysis>>,
    /// The latest analysis while its inputs are the ones on screen: what
    /// every view shows and every export writes.
    pub shown: Memo<Option<Analysis>>,
    /// The image being checked by the worker: request, URL, name.
    /// The request is `None` while the file's bytes are still being read.
    pub pending_image: RwSignal<Option<(Option<u32>, String, String)>>,
    pub image: RwSignal<Option<ImageView>>,
    /// The image finding whose heat map is drawn over the image.
    pub heat_map: RwSignal<Option<String>>,
}

impl AppState {
    pub fn new() -> Self {
        let bundle: RwSignal<Option<BundleInfo>> = RwSignal::new(None);
        let report = RwSignal::new(String::new());
        let result: RwSignal<Option<Analysis>> = RwSignal::new(None);
        let image: RwSignal<Option<ImageView>> = RwSignal::new(None);
        // Cloned only when it is shown: typing makes it stale at each key.
        let shown = Memo::new(move |_| {
            let on_screen = inputs_of(&report.get(), image.get().as_ref(), bundle.get().as_ref());
            result.with(|r| r.as_ref().filter(|a| a.inputs == on_screen).cloned())
        });
        Self {
            phase: RwSignal::new(Phase::Loading),
            status_text: RwSignal::new("Loading models…".into()),
            progress: RwSignal::new(None),
            bundle,
            notice: RwSignal::new(None),
            report,
            pending: RwSignal::new(None),
            result,
            shown,
            pending_image: RwSignal::new(None),
            image,
            heat_map: RwSignal::new(None),
        }
    }

    /// What Analyze would read now (untracked).
    pub fn inputs_on_screen(&self) -> Inputs {
        inputs_of(
            &self.report.get_untracked(),
            self.image.get_untracked().as_ref(),
            self.bundle.get_untracked().as_ref(),
        )
    }

    /// Whether a result exists that no longer matches what is on screen.
    pub fn result_is_stale(&self) -> bool {
        self.result.with(Option::is_some) && self.shown.with(Option::is_none)
    }

    pub fn set_phase(&self, phase: Phase, text: &str) {
        self.phase.set(phase);
        self.status_text.set(text.to_string());
        if phase != Phase::Busy {
            self.pending.set(None);
        }
    }

    /// Shows an analysis when it answers the request still pending, with
    /// its note (the rules stood in for a model) as the notice.
    pub fn finish_analysis(&self, analysed: Analysed) {
        let Analysed {
            request,
            prediction,
            evidence,
            note,
            elapsed_ms,
        } = analysed;
        let Some((pending, inputs)) = self.pending.get_untracked() else {
            return;
        };
        if pending != request {
            return;
        }
        let n = prediction.entities.len();
        // Show where the most probable image finding was seen.
        self.heat_map
            .set(crate::table::strongest_mapped_finding(&prediction));
        self.result.set(Some(Analysis {
            request,
            inputs,
            prediction,
            evidence,
            elapsed_ms,
        }));
        self.set_phase(
            Phase::Ready,
            &format!("Analysed: {n} entities in {elapsed_ms:.1} ms"),
        );
        if let Some(note) = note {
            self.notice.set(Some(capitalized(&note)));
        }
    }

    /// A request that got no answer: refused, it is said as a notice
    /// (`request_failed`); left unanswered by a worker that stopped, it is
    /// dropped, since the crash notice and the new worker's status say what
    /// happened.
    pub fn reply_failed(&self, request: u32, error: &ReplyError) {
        match error {
            ReplyError::Stopped => self.forget_request(request),
            e => self.request_failed(Some(request), &e.to_string()),
        }
    }

    fn forget_request(&self, request: u32) {
        if self.pending.get_untracked().map(|(r, _)| r) == Some(request) {
            self.pending.set(None);
        }
        let image = self.pending_image.get_untracked();
        if let Some((_, url, _)) = image.filter(|(r, _, _)| *r == Some(request)) {
            let _ = web_sys::Url::revoke_object_url(&url);
            self.pending_image.set(None);
        }
    }

    /// A refused report or image. Nothing from before it stays on screen as
    /// if it answered the new input: a refused report clears the result; a
    /// refused image also unloads the X-ray that was shown before it (the
    /// user meant to replace it, so Analyze must not quietly use it) and
    /// the result computed on that X-ray, and the notice says so.
    pub fn request_failed(&self, request: Option<u32>, message: &str) {
        let mut notice = capitalized(message);
        let image = self.pending_image.get_untracked();
        if let Some((_, url, name)) = image.filter(|(r, _, _)| r.is_some() && *r == request) {
            let _ = web_sys::Url::revoke_object_url(&url);
            self.pending_image.set(None);
            notice = format!("{name}: {notice}");
            if let Some(old) = self.image.get_untracked() {
                let _ = web_sys::Url::revoke_object_url(&old.url);
                self.image.set(None);
                if !notice.ends_with(['.', '!', '?']) {
                    notice.push('.');
                }
                notice.push_str(&format!(
                    " The X-ray shown before ({}) was removed, so Analyze will not use it.",
                    old.name
                ));
                self.clear_result();
            }
        }
        if self.pending.get_untracked().map(|(r, _)| r) == request {
            self.set_phase(Phase::Ready, "Models ready");
            self.clear_result();
        }
        self.notice.set(Some(notice));
    }

    fn clear_result(&self) {
        self.result.set(None);
        self.heat_map.set(None);
    }

    /// What Analyze will read, in words: shown beside the button, so that
    /// which X-ray (if any) goes with the report is never a guess.
    pub fn analysis_inputs(&self) -> String {
        let image_model = self.bundle.get().is_none_or(|b| b.image_model);
        let loaded = self.image.get().map(|i| i.name);
        let text = !self.report.get().trim().is_empty();
        let mut line = match (text, loaded.clone().filter(|_| image_model)) {
            (true, Some(name)) => format!("Analyze reads the report and the X-ray {name}."),
            (true, None) => "Analyze reads the report; no X-ray is loaded.".to_string(),
            (false, Some(name)) => format!("Analyze reads the X-ray {name} alone."),
            (false, None) => {
                "Nothing to analyse yet: type a report or choose an X-ray.".to_string()
            }
        };
        if loaded.is_some() && !image_model {
            line.push_str(" The X-ray is shown for reading only: this bundle has no image model.");
        }
        if let Some((_, _, name)) = self.pending_image.get() {
            line.push_str(&format!(" {name} is being checked."));
        }
        line
    }

    pub fn image_checked(&self, checked: CheckedImage) {
        let CheckedImage {
            request,
            width,
            height,
            sha256,
        } = checked;
        let Some((Some(pending), url, name)) = self.pending_image.get_untracked() else {
            return;
        };
        if pending != request {
            return;
        }
        self.pending_image.set(None);
        if let Some(old) = self.image.get_untracked() {
            let _ = web_sys::Url::revoke_object_url(&old.url);
        }
        // A result's heat maps belong to the image it was computed on.
        self.heat_map.set(None);
        self.image.set(Some(ImageView {
            request,
            url,
            name,
            width,
            height,
            sha256,
        }));
    }
}

/// The inputs an analysis of `report` and `image` reads with `bundle`: the
/// image only when the bundle has an image model (Analyze's rule).
fn inputs_of(report: &str, image: Option<&ImageView>, bundle: Option<&BundleInfo>) -> Inputs {
    Inputs {
        text: report.to_string(),
        image: image
            .filter(|_| bundle.is_some_and(|b| b.image_model))
            .map(ImageView::identity),
    }
}

pub(crate) fn capitalized(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
