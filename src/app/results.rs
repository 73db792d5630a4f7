//! The highlighted report, the legend, the findings table and the exports.

use super::download;
use super::image_panel::HeatMapToggle;
use super::state::{Analysis, AppState};
use crate::export::{prediction_csv, prediction_json};
use crate::highlight::{segments, Segment};
use crate::table::{rows, Sort, SortKey};
use integrabner_core::{Entity, FindingSource};
use integrabner_models::engine::{Evidence, FusedParts};
use leptos::prelude::*;
use wasm_bindgen::JsCast;

#[component]
pub fn Results(state: AppState) -> impl IntoView {
    let threshold = RwSignal::new(0.0f32);
    let sort = RwSignal::new(Sort::default());
    // Details of the entity under the pointer or with keyboard focus, shown in
    // a line of its own so that nothing is clipped by the scrolling report.
    let details = RwSignal::new(None::<String>);
    let inspect = move |target: Option<web_sys::EventTarget>| {
        let tip = target
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .and_then(|e| e.closest("[data-entity]").ok().flatten())
            .and_then(|e| e.get_attribute("data-tip"));
        if tip.is_some() {
            details.set(tip);
        }
    };
    view! {
        <Legend/>
        <div
            id="highlighted"
            class="highlighted"
            on:mouseover=move |ev| inspect(ev.target())
            on:focusin=move |ev| inspect(ev.target())
            aria-label="Report with entities highlighted"
            data-request=move || state.shown.get().map(|a| a.request)
            data-elapsed-ms=move || state.shown.get().map(|a| format!("{:.3}", a.elapsed_ms))
        >
            {move || match state.shown.get() {
                Some(a) => highlighted(&a).into_any(),
                None if state.result_is_stale() => view! {
                    <p id="stale" class="placeholder" role="status">
                        "The report or the X-ray changed since the last analysis, so its results are hidden. Press Analyze to update them."
                    </p>
                }
                .into_any(),
                None => view! { <p class="placeholder">"Results appear here after Analyze."</p> }.into_any(),
            }}
        </div>
        <p id="entity-details" class="entity-details" aria-live="polite">
            {move || details.get().unwrap_or_else(|| "Point at or tab to a highlighted term for its concept, type, assertion, confidence and source.".into())}
        </p>
        <div class="table-head">
            <h2>"Findings"</h2>
            <label for="threshold">"Minimum confidence "</label>
            <input
                id="threshold"
                type="range"
                min="0"
                max="1"
                step="0.05"
                prop:value=move || threshold.get().to_string()
                on:input=move |ev| threshold.set(event_target_value(&ev).parse().unwrap_or(0.0))
            />
            <output for="threshold">{move || format!("{:.0}%", threshold.get() * 100.0)}</output>
        </div>
        <table id="findings">
            <caption>"Coded findings (OpenI MeSH headings) judged present"</caption>
            <thead>
                <tr>
                    <SortHeader sort=sort key=SortKey::Term title="Term"/>
                    <SortHeader sort=sort key=SortKey::Type title="Type"/>
                    <SortHeader sort=sort key=SortKey::Confidence title="Confidence"/>
                    <SortHeader sort=sort key=SortKey::Source title="Source"/>
                    <th scope="col">"Assertion"</th>
                    <th scope="col">"Qualifiers"</th>
                </tr>
            </thead>
            <tbody>
                {move || {
                    let findings = state.shown.get().map(|a| a.prediction.findings).unwrap_or_default();
                    let shown = rows(&findings, threshold.get(), sort.get());
                    if shown.is_empty() {
                        return view! {
                            <tr class="empty"><td colspan="6">"No findings at or above this confidence."</td></tr>
                        }
                        .into_any();
                    }
                    shown
                        .into_iter()
                        .map(|f| {
                            let source = f.source.as_str().to_string();
                            let source_attr = source.clone();
                            let has_map = matches!(f.source, FindingSource::Image | FindingSource::Fusion)
                                && state
                                    .shown
                                    .with(|r| r.as_ref().is_some_and(|a| a.prediction.heat_maps.iter().any(|h| h.concept == f.concept)));
                            // A fused probability shows what each model said.
                            let parts = if f.source == FindingSource::Fusion {
                                state
                                    .shown
                                    .with(|r| r.as_ref().map(|a| fused_parts(&a.evidence, &f.concept)))
                                    .unwrap_or_default()
                            } else {
                                String::new()
                            };
                            let map_button = has_map.then(|| {
                                view! { <HeatMapToggle selected=state.heat_map concept=f.concept.clone()/> }
                            });
                            view! {
                                <tr
                                    data-finding=""
                                    data-concept=f.concept.clone()
                                    data-type=f.concept_type.as_str()
                                    data-source=source_attr
                                    data-probability=format!("{:.4}", f.probability)
                                >
                                    <td class=format!("term type-{}", f.concept_type.as_str())>{f.concept.clone()}</td>
                                    <td>{f.concept_type.as_str()}</td>
                                    <td class="num" title=parts.clone()>{format!("{:.0}%", f.probability * 100.0)}</td>
                                    <td>{source}" "{map_button}</td>
                                    <td>"present"</td>
                                    <td class="qualifiers">
                                        {f.qualifiers.iter().map(|q| {
                                            let kind = f.qualifiers_by_kind.iter().find(|(_, terms)| terms.contains(q)).map_or("", |(k, _)| k.as_str());
                                            view! { <span class="chip" data-qualifier=q.clone() title=kind>{q.clone()}</span> }
                                        }).collect_view()}
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()
                        .into_any()
                }}
            </tbody>
        </table>
        <div class="exports">
            <ExportButton state=state id="export-json" title="Export JSON" file_name="integrabner-result.json" mime="application/json" render=prediction_json/>
            <ExportButton state=state id="export-csv" title="Export CSV" file_name="integrabner-result.csv" mime="text/csv" render=prediction_csv/>
        </div>
    }
}

/// What the report model and the image model each said of a fused concept.
fn fused_parts(evidence: &Evidence, concept: &str) -> String {
    let percent = |p: f32| format!("{:.0}%", p * 100.0);
    match evidence.fused.iter().find(|f| f.concept == concept) {
        Some(FusedParts {
            text,
            image: Some(image),
            ..
        }) => format!(
            "fused from report {} and image {}",
            percent(*text),
            percent(*image)
        ),
        Some(FusedParts {
            text, image: None, ..
        }) => format!(
            "report {}; the image model does not score this concept",
            percent(*text)
        ),
        None => String::new(),
    }
}

/// Saves the current result as a file rendered by `render`.
#[component]
fn ExportButton(
    state: AppState,
    id: &'static str,
    title: &'static str,
    file_name: &'static str,
    mime: &'static str,
    render: fn(&integrabner_core::Prediction) -> String,
) -> impl IntoView {
    let save = move |_| {
        // Only a result of what is on screen is written (the button is
        // disabled otherwise): never one image's findings under another.
        if let Some(a) = state.shown.get_untracked() {
            if let Err(e) = download::save(file_name, mime, &render(&a.prediction)) {
                state.notice.set(Some(e));
            }
        }
    };
    view! {
        <button
            id=id
            type="button"
            disabled=move || state.shown.with(Option::is_none)
            title=move || state.result_is_stale().then_some("The inputs changed since the last analysis: press Analyze first.")
            on:click=save
        >
            {title}
        </button>
    }
}

#[component]
fn SortHeader(sort: RwSignal<Sort>, key: SortKey, title: &'static str) -> impl IntoView {
    let aria = move || {
        let s = sort.get();
        match (s.key == key, s.descending) {
            (false, _) => "none",
            (true, true) => "descending",
            (true, false) => "ascending",
        }
    };
    view! {
        <th scope="col" aria-sort=aria>
            <button type="button" class="sort" on:click=move |_| sort.update(|s| *s = s.click(key))>
                {title}
                <span aria-hidden="true">
                    {move || match aria() {
                        "descending" => " ▼",
                        "ascending" => " ▲",
                        _ => "",
                    }}
                </span>
            </button>
        </th>
    }
}

#[component]
pub(super) fn Legend() -> impl IntoView {
    view! {
        <ul class="legend" aria-label="Legend">
            <li><mark class="ent label-ANATOMY">"Anatomy"</mark></li>
            <li><mark class="ent label-DISEASE">"Disease"</mark></li>
            <li><mark class="ent label-FINDING">"Finding"</mark></li>
            <li><mark class="ent label-DEVICE">"Device"</mark></li>
            <li><mark class="ent assert-present">"present"</mark></li>
            <li><mark class="ent assert-absent">"absent"</mark></li>
            <li><mark class="ent assert-uncertain">"uncertain"</mark></li>
        </ul>
    }
}

fn highlighted(a: &Analysis) -> impl IntoView {
    segments(&a.inputs.text, &a.prediction.entities)
        .into_iter()
        .map(|segment| match segment {
            Segment::Plain(text) => text.into_any(),
            Segment::Entity { text, entity } => {
                entity_mark(text, &a.prediction.entities[entity]).into_any()
            }
            Segment::Modifier {
                text,
                entity,
                modifier,
            } => {
                let e = &a.prediction.entities[entity];
                let qualifiers = e.modifiers[modifier].qualifiers.join(", ");
                let of = e.concept.clone().unwrap_or_else(|| e.text.clone());
                view! {
                    <u class="cue" data-qualifiers=qualifiers.clone() title=format!("qualifier of {of}: {qualifiers}")>
                        {text}
                    </u>
                }
                .into_any()
            }
        })
        .collect_view()
}

pub(super) fn entity_mark(text: String, e: &Entity) -> impl IntoView {
    let label = e.label.entity_label();
    let assertion = e.assertion.as_str();
    let concept = e.concept.clone().unwrap_or_default();
    let qualifiers: Vec<&str> = e
        .modifiers
        .iter()
        .flat_map(|m| m.qualifiers.iter().map(String::as_str))
        .collect();
    let mut details = format!(
        "{} · {} · {} · confidence {:.0}% · source {}",
        if concept.is_empty() {
            "no concept"
        } else {
            &concept
        },
        label.to_lowercase(),
        assertion,
        e.score * 100.0,
        e.source
    );
    if !qualifiers.is_empty() {
        details.push_str(&format!(" · qualifiers: {}", qualifiers.join(", ")));
    }
    view! {
        <mark
            class=format!("ent label-{label} assert-{assertion}")
            tabindex="0"
            data-entity=""
            data-label=label
            data-concept=concept
            data-assertion=assertion
            data-score=format!("{:.4}", e.score)
            data-source=e.source.clone()
            data-tip=details.clone()
            aria-label=format!("{text}: {details}")
        >
            {text.clone()}
        </mark>
    }
}
