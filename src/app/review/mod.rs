//! The review mode (`#review`): an expert judges the model's output case by
//! case. The session lives in one signal and is written to IndexedDB after
//! every change, so a reload, a crash or a closed tab resumes where it was.

mod analysis;
mod case_view;
mod controller;
mod form;
mod keys;
mod start;
mod summary_view;

use super::state::AppState;
use super::worker_client::WorkerClient;
use controller::{Review, Stage};
use leptos::prelude::*;

/// Says so when a session's predictions came from another bundle than the
/// one this page has loaded (an imported session, or a newer app).
fn other_bundle(review: Review) -> Option<String> {
    let loaded = review.app.bundle.get()?.version;
    review.session.with(|s| {
        let model = &s.as_ref()?.model;
        (model.bundle != loaded).then(|| {
            format!(
                "This session was analysed with model bundle {} (vocabulary {}); this page has bundle {loaded}. Judgments refer to the session's own predictions.",
                model.bundle, model.vocabulary
            )
        })
    })
}

#[component]
pub fn ReviewView(
    state: AppState,
    client: StoredValue<WorkerClient, LocalStorage>,
    active: Signal<bool>,
) -> impl IntoView {
    let review = Review::new(state, client);
    review.resume();
    review.analyse_when_ready();
    review.listen_to_keys(active);
    view! {
        <section
            id="review"
            aria-label="Review session"
            data-stage=move || review.stage.get().as_str()
            data-saved=move || review.saved.get()
            data-held-elsewhere=move || review.held_elsewhere.get().then_some("")
        >
            <p id="review-bundle" class="note" hidden=move || other_bundle(review).is_none()>
                {move || other_bundle(review)}
            </p>
            <p id="review-message" role="alert" class="notice" hidden=move || review.message.get().is_none()>
                {move || review.message.get().unwrap_or_default()}
            </p>
            {move || match review.stage.get() {
                Stage::Opening => view! { <p class="placeholder">"Opening the saved session…"</p> }.into_any(),
                Stage::Start => view! { <start::StartPanel review=review/> }.into_any(),
                Stage::Analysing { done, total } => view! {
                    <p id="review-progress">
                        {format!("Analysing case {} of {total} in this page…", done + 1)}
                        " "<progress max=total.to_string() value=done.to_string()></progress>
                    </p>
                    <p class="notice" hidden=move || state.phase.get() != super::state::Phase::Error>
                        "The models are not available (see the status above). The session is saved; its cases are analysed as soon as the models load."
                    </p>
                }
                .into_any(),
                Stage::Cases => view! { <case_view::CaseView review=review/> }.into_any(),
                Stage::Summary => view! { <summary_view::SummaryView review=review/> }.into_any(),
            }}
        </section>
    }
}
