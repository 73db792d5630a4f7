//! The end of a session: the closing form, how the model fared against the
//! expert, and the exports.

use super::super::download;
use super::controller::{Review, Stage};
use super::form::FormFields;
use crate::review::summary::{export_csv, export_json, summarize};
use leptos::prelude::*;

fn percent(v: Option<f64>) -> String {
    v.map(|v| format!("{:.0}%", v * 100.0))
        .unwrap_or_else(|| "–".into())
}

#[component]
pub fn SummaryView(review: Review) -> impl IntoView {
    let summary = Memo::new(move |_| review.session.with(|s| s.as_ref().map(summarize)));
    let confirm_close = RwSignal::new(false);
    let save = move |kind: &'static str| {
        let Some((name, mime, body)) = review.session.with_untracked(|s| {
            let s = s.as_ref()?;
            let date = js_sys::Date::new_0()
                .to_iso_string()
                .as_string()
                .unwrap_or_default();
            let stem = format!("integrabner-review-{}", date.get(..10).unwrap_or("session"));
            Some(match kind {
                "json" => (
                    format!("{stem}.json"),
                    "application/json",
                    export_json(s, js_sys::Date::now()),
                ),
                _ => (format!("{stem}.csv"), "text/csv", export_csv(s)),
            })
        }) else {
            return;
        };
        if let Err(e) = download::save(&name, mime, &body) {
            review.message.set(Some(e));
        }
    };
    view! {
        <div id="review-summary">
            <div class="review-nav">
                <button id="review-back" type="button" on:click=move |_| review.stage.set(Stage::Cases)>"← Back to the cases"</button>
                <h2>"Session summary"</h2>
                <button id="review-export-json" type="button" on:click=move |_| save("json")>"Export session (JSON)"</button>
                <button id="review-export-csv" type="button" on:click=move |_| save("csv")>"Export summary (CSV)"</button>
            </div>
            {move || {
                summary.with(|s| s.as_ref().map(|s| {
                    let a = &s.agreement;
                    view! {
                        <p
                            id="review-agreement"
                            data-accepted=a.accepted
                            data-rejected=a.rejected
                            data-corrected=a.corrected
                            data-added=a.added
                            data-pending=a.pending
                            data-corrected-qualifiers=a.corrected_qualifiers
                        >
                            {format!(
                                "{} of {} cases fully judged · {} accepted, {} rejected, {} corrected ({} type, {} concept, {} assertion, {} qualifiers), {} added by you, {} not judged · {:.0} s in all, {:.1} s per case",
                                s.reviewed_cases, s.cases, a.accepted, a.rejected, a.corrected, a.corrected_type,
                                a.corrected_concept, a.corrected_assertion, a.corrected_qualifiers, a.added, a.pending, s.total_seconds, s.mean_seconds_per_case
                            )}
                        </p>
                        <p class="note">
                            "Accepted items count as right, rejected as wrong, added as missed; a correction counts as the model's reading wrong and yours missed, except one that changed only a finding's qualifiers. Qualifier rows score (heading, qualifier) pairs, the model's against yours. Items not judged are left out."
                        </p>
                        <table id="review-scores">
                            <thead>
                                <tr>
                                    <th scope="col">"Level"</th><th scope="col">"Kind"</th><th scope="col">"Name"</th>
                                    <th scope="col">"Right"</th><th scope="col">"Wrong"</th><th scope="col">"Missed"</th>
                                    <th scope="col">"Precision"</th><th scope="col">"Recall"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {s.rows.iter().map(|r| view! {
                                    <tr
                                        data-summary-row=""
                                        data-level=r.level
                                        data-kind=r.kind.as_str()
                                        data-name=r.name.clone()
                                        data-precision=r.precision.map(|p| format!("{p:.4}"))
                                        data-recall=r.recall.map(|p| format!("{p:.4}"))
                                    >
                                        <td>{r.level}</td><td>{r.kind.as_str()}</td><td>{r.name.clone()}</td>
                                        <td class="num">{r.counts.tp}</td><td class="num">{r.counts.fp}</td><td class="num">{r.counts.fn_}</td>
                                        <td class="num">{percent(r.precision)}</td><td class="num">{percent(r.recall)}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                        <p id="review-times" class="note">
                            {review.session.with(|s| {
                                s.as_ref()
                                    .map(|s| s.cases.iter().map(|c| format!("{} {:.0} s", c.id, c.time_ms / 1000.0)).collect::<Vec<_>>().join(" · "))
                                    .map(|t| format!("Time per case: {t}"))
                            })}
                        </p>
                        <p class="note">
                            {s.form_means.iter().map(|(k, v)| format!("mean {k} {v:.1}")).collect::<Vec<_>>().join(" · ")}
                        </p>
                    }
                }))
            }}
            <h3>"The session as a whole"</h3>
            <FormFields
                prefix="session"
                read=move || review.session.with(|s| s.as_ref().and_then(|s| s.form.clone())).unwrap_or_default()
                write=move |f| {
                    review.change(|s| f(s.form.get_or_insert_with(Default::default)));
                }
            />
            <div class="actions">
                <button
                    id="review-close"
                    type="button"
                    on:click=move |_| if confirm_close.get_untracked() { review.close() } else { confirm_close.set(true) }
                >
                    {move || if confirm_close.get() { "Click again to delete this session from the browser" } else { "Close the session…" }}
                </button>
                <span class="note">"Export it first: closing deletes the saved judgments from this browser."</span>
            </div>
        </div>
    }
}
