//! The review mode (`#review`): an expert judges the model's output case by
//! case. The session lives in one signal and is written to IndexedDB after
//! every change, so a reload, a crash or a closed tab resumes where it was.

mod case_view;
mod controller;
mod form;
mod start;
mod summary_view;

use super::state::AppState;
use super::worker_client::WorkerClient;
use controller::{Review, Stage};
use leptos::prelude::*;

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
        >
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
                }
                .into_any(),
                Stage::Cases => view! { <case_view::CaseView review=review/> }.into_any(),
                Stage::Summary => view! { <summary_view::SummaryView review=review/> }.into_any(),
            }}
        </section>
    }
}
