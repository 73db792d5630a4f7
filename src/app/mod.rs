//! The page: report and image input, highlighted entities, findings table.
//! Inference happens in the worker (`worker_client`); this module only shows.

mod download;
mod idb;
mod image_panel;
mod results;
mod review;
mod state;
mod worker_client;

use crate::samples::SAMPLES;
use leptos::ev;
use leptos::prelude::*;
use state::{AppState, Phase};
use worker_client::WorkerClient;

pub fn mount() {
    console_error_panic_hook::set_once();
    register_service_worker();
    leptos::mount::mount_to_body(App);
}

/// The service worker keeps the app shell for offline visits. Failing to
/// register (e.g. a `file:` page) only loses that, so it is not an error.
fn register_service_worker() {
    let container = window().navigator().service_worker();
    let _ = container.register("sw.js");
}

#[component]
fn App() -> impl IntoView {
    let state = AppState::new();
    let client = StoredValue::new_local(WorkerClient::start(state));
    let report = state.report;
    // `#review` is the review mode; anything else the single-report analyser.
    let hash = RwSignal::new(window().location().hash().unwrap_or_default());
    let hash_change = window_event_listener(ev::hashchange, move |_| {
        hash.set(window().location().hash().unwrap_or_default())
    });
    on_cleanup(move || hash_change.remove());
    let reviewing = Signal::derive(move || hash.get() == "#review");

    let analyze = move || {
        state.notice.set(None);
        let inputs = state.inputs_on_screen();
        let text = inputs.text.clone();
        let image = state
            .image
            .get_untracked()
            .filter(|_| inputs.image.is_some())
            .map(|i| i.request);
        if text.trim().is_empty() && image.is_none() {
            let msg = if state.image.get_untracked().is_some() {
                "Type or paste a report: this bundle has no image model, so an image alone gives no findings."
            } else {
                "Type or paste a report or choose a chest X-ray first (or pick one of the samples)."
            };
            state.notice.set(Some(msg.into()));
            return;
        }
        if let Some((_, _, name)) = state.pending_image.get_untracked() {
            state.notice.set(Some(format!(
                "{name} is still being checked; press Analyze again when it is shown."
            )));
            return;
        }
        match state.phase.get_untracked() {
            Phase::Ready => {}
            Phase::Busy => return,
            Phase::Loading => {
                state
                    .notice
                    .set(Some("The models are still loading.".into()));
                return;
            }
            Phase::Error => {
                state.notice.set(Some(
                    "The models are not available; see the status above.".into(),
                ));
                return;
            }
        }
        let Some(sent) = client.with_value(|c| c.analyze("report", text.clone(), image)) else {
            state
                .notice
                .set(Some("The analysis worker is not running.".into()));
            return;
        };
        let request = sent.request;
        state.phase.set(Phase::Busy);
        state.status_text.set("Analysing…".into());
        state.pending.set(Some((request, inputs)));
        wasm_bindgen_futures::spawn_local(async move {
            match WorkerClient::analysed(sent).await {
                Ok(a) => state.finish_analysis(a),
                Err(e) => state.reply_failed(request, &e),
            }
        });
    };

    let keydown = window_event_listener(ev::keydown, move |ev| {
        if (ev.ctrl_key() || ev.meta_key()) && ev.key() == "Enter" && !reviewing.get_untracked() {
            ev.prevent_default();
            analyze();
        }
    });
    on_cleanup(move || keydown.remove());

    view! {
        <header class="top">
            <h1>"IntegraBNER"</h1>
            <p class="tagline">"Entities and findings in chest radiology reports, computed in this page. Nothing you enter leaves your machine."</p>
            <StatusBar state=state on_retry=move || client.with_value(|c| c.spawn())/>
            <nav class="modes" aria-label="Mode">
                <a id="mode-analyze" href="#" aria-current=move || (!reviewing.get()).then_some("page")>"Analyze a case"</a>
                <a id="mode-review" href="#review" aria-current=move || reviewing.get().then_some("page")>"Review session"</a>
            </nav>
        </header>
        <main class="review-main" hidden=move || !reviewing.get()>
            <review::ReviewView state=state client=client active=reviewing/>
        </main>
        <main class="layout" hidden=reviewing>
            <section class="input-panel" aria-label="Input">
                <label for="report" class="field-label">"Radiology report"</label>
                <div class="samples" role="group" aria-label="Sample reports">
                    <span>"Samples:"</span>
                    {SAMPLES
                        .iter()
                        .map(|s| {
                            let text = s.text;
                            view! {
                                <button type="button" class="sample" on:click=move |_| report.set(text.to_string())>
                                    {s.name}
                                </button>
                            }
                        })
                        .collect_view()}
                </div>
                <textarea
                    id="report"
                    rows="14"
                    spellcheck="false"
                    placeholder="Paste a chest X-ray report (FINDINGS / IMPRESSION)…"
                    prop:value=move || report.get()
                    on:input=move |ev| report.set(event_target_value(&ev))
                ></textarea>
                <image_panel::ImageInput state=state client=client/>
                <div class="actions">
                    <button
                        id="analyze"
                        type="button"
                        disabled=move || state.phase.get() != Phase::Ready
                        on:click=move |_| analyze()
                    >
                        "Analyze"
                    </button>
                    <kbd>"Ctrl"</kbd>"+"<kbd>"Enter"</kbd>
                </div>
                <p id="analysis-inputs" class="note">{move || state.analysis_inputs()}</p>
                <p id="notice" role="alert" class="notice" hidden=move || state.notice.get().is_none()>
                    {move || state.notice.get().unwrap_or_default()}
                </p>
            </section>
            <section class="results-panel" aria-label="Results">
                <results::Results state=state/>
                <image_panel::ImageViewer state=state/>
            </section>
        </main>
        <footer class="bottom">
            {move || {
                state
                    .bundle
                    .get()
                    .map(|b| {
                        format!(
                            "Bundle {} · vocabulary {} · {}{}",
                            b.version,
                            b.vocabulary_version,
                            if b.text_model {
                                "report model (BERT: entities, assertions, coded findings) reading the rule labeler's evidence"
                            } else {
                                "rule labeler (dictionary + ConText assertion)"
                            },
                            if b.image_model {
                                " · image model (EfficientNet-Lite0, NIH findings, heat maps) · report and image fused when both are given"
                            } else {
                                ""
                            },
                        )
                    })
            }}
        </footer>
    }
}

#[component]
fn StatusBar(state: AppState, on_retry: impl Fn() + Copy + 'static) -> impl IntoView {
    view! {
        <div
            id="status"
            role="status"
            aria-live="polite"
            data-state=move || state.phase.get().as_str()
            data-load-ms=move || state.bundle.get().map(|b| format!("{:.1}", b.load_ms))
            data-origin=move || {
                state
                    .bundle
                    .get()
                    .map(|b| match b.origin {
                        crate::protocol::BundleOrigin::Network => "network",
                        crate::protocol::BundleOrigin::Cache => "cache",
                    })
            }
        >
            <span class="status-text">{move || state.status_text.get()}</span>
            {move || {
                let loading = state.phase.get() == Phase::Loading;
                state
                    .progress
                    .get()
                    .filter(|_| loading)
                    .map(|(loaded, total)| {
                        let percent = if total == 0 { 0.0 } else { loaded as f64 * 100.0 / total as f64 };
                        view! {
                            <progress max="100" value=format!("{percent:.0}")></progress>
                            <span class="progress-text">
                                {format!("{} / {} ({percent:.0}%)", human_bytes(loaded), human_bytes(total))}
                            </span>
                        }
                    })
            }}
            <button
                type="button"
                class="retry"
                hidden=move || state.phase.get() != Phase::Error
                on:click=move |_| on_retry()
            >
                "Retry"
            </button>
        </div>
    }
}

fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MB", n as f64 / (1 << 20) as f64)
    } else {
        format!("{:.0} kB", n as f64 / 1024.0)
    }
}
