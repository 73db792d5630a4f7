//! One case under review: the highlighted report (select text to add an
//! entity), the image with a heat map, the items to judge and the case form.

use super::super::image_panel::{heat_map_svg, HeatMapToggle};
use super::super::results::{entity_mark, Legend};
use super::controller::{Draft, Review, Stage};
use super::form::FormFields;
use crate::highlight::{segments, Segment};
use crate::review::session::{Action, Case, Item, ItemKind, Reading, Verdict};
use integrabner_core::{Assertion, ConceptType, Entity};
use leptos::prelude::*;
use wasm_bindgen::JsCast;

fn parse_type(s: &str) -> ConceptType {
    ConceptType::ALL
        .into_iter()
        .find(|t| t.as_str() == s)
        .unwrap_or(ConceptType::Finding)
}

fn parse_assertion(s: &str) -> Assertion {
    Assertion::ALL
        .into_iter()
        .find(|a| a.as_str() == s)
        .unwrap_or(Assertion::Present)
}

#[component]
pub fn CaseView(review: Review) -> impl IntoView {
    let position = move || {
        review.session.with(|s| {
            s.as_ref()
                .map(|s| (s.current, s.cases.len()))
                .unwrap_or((0, 0))
        })
    };
    view! {
        <div
            id="review-case"
            data-case-index=move || position().0
            data-case-id=move || review.with_case(|c| c.id.clone())
            data-pending=move || review.with_case(Case::pending)
        >
            <div class="review-nav">
                <button id="review-prev" type="button" disabled=move || position().0 == 0 on:click=move |_| review.step(-1)>"← Previous"</button>
                <h2>
                    {move || {
                        let (i, n) = position();
                        let id = review.with_case(|c| c.id.clone()).unwrap_or_default();
                        format!("Case {} of {n} · {id}", i + 1)
                    }}
                </h2>
                <span class="note">
                    {move || review.with_case(|c| format!("{} of {} judged", c.items.len() - c.pending(), c.items.len()))}
                </span>
                <button id="review-next" type="button" disabled=move || { let (i, n) = position(); i + 1 >= n } on:click=move |_| review.step(1)>"Next →"</button>
                <button
                    id="review-finish"
                    type="button"
                    on:click=move |_| {
                        review.change(|s| {
                            s.form.get_or_insert_with(Default::default);
                        });
                        review.stage.set(Stage::Summary);
                    }
                >
                    "Finish session"
                </button>
            </div>
            <p class="keys note">
                <kbd>"←"</kbd>" "<kbd>"→"</kbd>" case · "<kbd>"↑"</kbd>" "<kbd>"↓"</kbd>" item · "
                <kbd>"a"</kbd>" accept · "<kbd>"r"</kbd>" reject · "<kbd>"Shift+A"</kbd>" accept the rest · "
                <kbd>"u"</kbd>" undo · "<kbd>"e"</kbd>" add the selected text"
            </p>
            <p class="notice" hidden=move || review.with_case(|c| c.problem.is_none()).unwrap_or(true)>
                {move || review.with_case(|c| c.problem.clone().map(|p| format!("This case {p}."))).flatten()}
            </p>
            <div class="review-layout">
                <div class="review-column">
                    <Legend/>
                    <ReviewReport review=review/>
                    <AddControls review=review/>
                    <CaseImage review=review/>
                </div>
                <div class="review-column">
                    <ItemTable review=review/>
                    <h3>"This case"</h3>
                    <FormFields
                        prefix="case"
                        read=move || review.with_case(|c| c.form.clone()).unwrap_or_default()
                        write=move |f| {
                            review.change(|s| {
                                if let Some(case) = s.case_mut() {
                                    f(&mut case.form);
                                }
                            });
                        }
                    />
                </div>
            </div>
        </div>
    }
}

/// The report with every entity item marked as the expert now reads it;
/// a rejected one is greyed, an added one outlined.
#[component]
fn ReviewReport(review: Review) -> impl IntoView {
    let remember_selection = move || {
        let Some(container) = document().get_element_by_id("review-report") else {
            return;
        };
        review.selection.set(selection_in(&container));
    };
    view! {
        <div
            id="review-report"
            class="highlighted"
            aria-label="Report; select words to add an entity"
            on:mouseup=move |_| remember_selection()
            on:keyup=move |_| remember_selection()
        >
            {move || {
                review.with_case(|case| {
                    let (entities, items): (Vec<Entity>, Vec<(usize, Verdict)>) = case
                        .items
                        .iter()
                        .enumerate()
                        .filter_map(|(i, item)| item.span.map(|(start, end)| (i, item, start, end)))
                        .map(|(i, item, start, end)| {
                            let r = item.judged();
                            let entity = Entity {
                                start,
                                end,
                                text: item.text.clone(),
                                label: r.concept_type,
                                concept: r.concept.clone(),
                                assertion: r.assertion,
                                score: item.score.unwrap_or(1.0),
                                source: item.source.clone(),
                                modifiers: Vec::new(),
                            };
                            (entity, (i, item.verdict))
                        })
                        .unzip();
                    segments(&case.text, &entities)
                        .into_iter()
                        .map(|segment| match segment {
                            Segment::Plain(text) | Segment::Modifier { text, .. } => {
                                text.into_any()
                            }
                            Segment::Entity { text, entity } => {
                                let (item, verdict) = items[entity];
                                view! {
                                    <span
                                        class=format!("verdict-{}", verdict.as_str())
                                        data-item=item
                                        on:click=move |_| review.focus.set(item)
                                    >
                                        {entity_mark(text, &entities[entity])}
                                    </span>
                                }
                                .into_any()
                            }
                        })
                        .collect_view()
                })
            }}
        </div>
    }
}

/// The selected text inside `container` as char offsets of its text.
fn selection_in(container: &web_sys::Element) -> Option<(usize, usize, String)> {
    let selection = window().get_selection().ok()??;
    if selection.is_collapsed() || selection.range_count() == 0 {
        return None;
    }
    let range = selection.get_range_at(0).ok()?;
    let node: &web_sys::Node = container.unchecked_ref();
    if !node.contains(Some(&range.start_container().ok()?))
        || !node.contains(Some(&range.end_container().ok()?))
    {
        return None;
    }
    let before = document().create_range().ok()?;
    before.select_node_contents(node).ok()?;
    before
        .set_end(&range.start_container().ok()?, range.start_offset().ok()?)
        .ok()?;
    let start = String::from(before.to_string()).chars().count();
    let text = String::from(range.to_string());
    Some((start, start + text.chars().count(), text))
}

/// Type, concept (with type-ahead over the vocabulary) and assertion for a
/// new item, and the buttons that add it.
#[component]
fn AddControls(review: Review) -> impl IntoView {
    let set = move |f: &dyn Fn(&mut Draft)| review.draft.update(|d| f(d));
    view! {
        <datalist id="review-vocabulary">
            {review.headings.with_value(|h| h.iter().map(|(name, t)| view! { <option value=name.to_string()>{t.as_str()}</option> }).collect_view())}
        </datalist>
        <fieldset class="review-add">
            <legend>"Add what the model missed"</legend>
            <p class="note">
                {move || match review.selection.get() {
                    Some((start, end, text)) => format!("Selected: \u{201c}{}\u{201d} (characters {start}–{end})", text.trim()),
                    None => "Select words in the report to add them as an entity.".to_string(),
                }}
            </p>
            <label for="add-concept">"Concept "</label>
            <input
                id="add-concept"
                list="review-vocabulary"
                placeholder="type to search the vocabulary"
                prop:value=move || review.draft.with(|d| d.concept.clone())
                on:input=move |ev| {
                    let text = event_target_value(&ev);
                    let known = review.headings.with_value(|h| h.find(&text).map(|(_, t)| t));
                    set(&|d| {
                        d.concept = text.clone();
                        if let Some(t) = known {
                            d.concept_type = t;
                        }
                    });
                }
            />
            <label for="add-type">" Type "</label>
            <select id="add-type" on:change=move |ev| { let t = parse_type(&event_target_value(&ev)); set(&|d| d.concept_type = t) }>
                {ConceptType::ALL.map(|t| view! { <option value=t.as_str() selected=move || review.draft.with(|d| d.concept_type == t)>{t.as_str()}</option> }).collect_view()}
            </select>
            <label for="add-assertion">" Assertion "</label>
            <select id="add-assertion" on:change=move |ev| { let a = parse_assertion(&event_target_value(&ev)); set(&|d| d.assertion = a) }>
                {Assertion::ALL.map(|a| view! { <option value=a.as_str() selected=move || review.draft.with(|d| d.assertion == a)>{a.as_str()}</option> }).collect_view()}
            </select>
            <div class="actions">
                <button id="add-entity" type="button" on:click=move |_| review.add_entity()>"Add selected text as entity"</button>
                <button id="add-finding" type="button" on:click=move |_| review.add_finding()>"Add finding"</button>
            </div>
        </fieldset>
    }
}

/// The case's image, with the heat map of the chosen image finding.
#[component]
fn CaseImage(review: Review) -> impl IntoView {
    move || {
        let name = review.with_case(|c| c.image.clone()).flatten()?;
        let view = match review.image.get() {
            Some((_, url)) => {
                let overlay = move || {
                    let concept = review.heat_map.get()?;
                    review.with_case(|c| {
                        c.prediction.as_ref()?.heat_maps.iter().find(|h| h.concept == concept).map(heat_map_svg)
                    })
                    .flatten()
                };
                view! {
                    <div class="image-frame">
                        <div class="image-stack">
                            <img src=url alt=format!("Chest X-ray {name}")/>
                            {overlay}
                        </div>
                    </div>
                }
                .into_any()
            }
            None => view! {
                <p class="note">{format!("The image {name} is not stored in this browser: choose it together with the session file to see it.")}</p>
            }
            .into_any(),
        };
        Some(
            view! { <figure id="review-image" data-name=name.clone()><figcaption>{name.clone()}</figcaption>{view}</figure> },
        )
    }
}

/// Every item of the case with its verdict and the controls to judge it.
#[component]
fn ItemTable(review: Review) -> impl IntoView {
    view! {
        <table id="review-items" aria-label="Entities and findings to judge">
            <thead>
                <tr>
                    <th scope="col">"Item"</th>
                    <th scope="col">"Type"</th>
                    <th scope="col">"Concept"</th>
                    <th scope="col">"Assertion"</th>
                    <th scope="col">"Conf."</th>
                    <th scope="col">"Source"</th>
                    <th scope="col">"Verdict"</th>
                </tr>
            </thead>
            <tbody>
                {move || {
                    let items = review.with_case(|c| c.items.clone()).unwrap_or_default();
                    if items.is_empty() {
                        return view! { <tr class="empty"><td colspan="7">"The model found nothing here. Add what it missed."</td></tr> }.into_any();
                    }
                    items.into_iter().enumerate().map(|(i, item)| item_row(review, i, item)).collect_view().into_any()
                }}
            </tbody>
        </table>
    }
}

fn item_row(review: Review, index: usize, item: Item) -> impl IntoView {
    let judged = item.judged().clone();
    // The item's reading now (the row may be older than the last change).
    let reading_now = move || {
        review
            .with_case_untracked(|c| c.items.get(index).map(|i| i.judged().clone()))
            .flatten()
    };
    let correct = move |change: Box<dyn FnOnce(&mut Reading)>| {
        if let Some(mut reading) = reading_now() {
            change(&mut reading);
            review.judge(Action::Correct(index, reading));
        }
    };
    let on_concept = move |ev: leptos::ev::Event| {
        let text = event_target_value(&ev);
        let Some(current) = reading_now() else { return };
        match review.reading_of(&text, current.concept_type, current.assertion) {
            Ok(reading) => review.judge(Action::Correct(
                index,
                Reading {
                    qualifiers: current.qualifiers,
                    ..reading
                },
            )),
            Err(e) => review
                .message
                .set(Some(super::super::state::capitalized(&e))),
        }
    };
    let on_qualifiers = move |ev: leptos::ev::Event| {
        let text = event_target_value(&ev);
        let Some(mut reading) = reading_now() else {
            return;
        };
        match review.qualifiers_of(&text) {
            Ok(qualifiers) => {
                reading.qualifiers = qualifiers;
                review.judge(Action::Correct(index, reading));
            }
            Err(e) => review
                .message
                .set(Some(super::super::state::capitalized(&e))),
        }
    };
    let heat_button = (item.kind == ItemKind::Finding
        && matches!(item.source.as_str(), "image" | "fusion"))
    .then(|| view! { <HeatMapToggle selected=review.heat_map concept=item.text.clone()/> });
    let is_entity = item.kind == ItemKind::Entity;
    let verdict = item.verdict;
    view! {
        <tr
            data-review-item=""
            data-index=index
            data-kind=item.kind.as_str()
            data-verdict=verdict.as_str()
            data-type=judged.concept_type.as_str()
            data-concept=judged.concept.clone().unwrap_or_default()
            data-assertion=judged.assertion.as_str()
            data-qualifiers=judged.qualifiers.join("/")
            class=move || if review.focus.get() == index { "focused" } else { "" }
            aria-selected=move || (review.focus.get() == index).to_string()
            on:click=move |_| review.focus.set(index)
        >
            <td class=format!("term type-{}", judged.concept_type.as_str())>
                {if is_entity { format!("\u{201c}{}\u{201d}", item.text) } else { item.text.clone() }}
                <span class="note">{if is_entity { " entity" } else { " finding" }}</span>
            </td>
            <td>
                <select aria-label="Type" on:change=move |ev| { let t = parse_type(&event_target_value(&ev)); correct(Box::new(move |r| r.concept_type = t)) }>
                    {ConceptType::ALL.map(|t| view! { <option value=t.as_str() selected=judged.concept_type == t>{t.as_str()}</option> }).collect_view()}
                </select>
            </td>
            <td>
                <input class="concept" aria-label="Concept" list="review-vocabulary" prop:value=judged.concept.clone().unwrap_or_default() on:change=on_concept/>
                {(!is_entity).then(|| view! {
                    <input
                        class="qualifiers"
                        aria-label="Qualifiers, comma-separated"
                        placeholder="qualifiers: left, small"
                        title="OpenI qualifier terms, comma-separated (left, upper lobe, small, mild)"
                        prop:value=judged.qualifiers.join(", ")
                        on:change=on_qualifiers
                    />
                })}
            </td>
            <td>
                {if is_entity {
                    view! {
                        <select aria-label="Assertion" on:change=move |ev| { let a = parse_assertion(&event_target_value(&ev)); correct(Box::new(move |r| r.assertion = a)) }>
                            {Assertion::ALL.map(|a| view! { <option value=a.as_str() selected=judged.assertion == a>{a.as_str()}</option> }).collect_view()}
                        </select>
                    }
                    .into_any()
                } else {
                    "present".into_any()
                }}
            </td>
            <td class="num">{item.score.map(|s| format!("{:.0}%", s * 100.0)).unwrap_or_default()}</td>
            <td>{item.source.clone()}" "{heat_button}</td>
            <td class="verdict">
                <button type="button" class="accept" aria-pressed=(verdict == Verdict::Accepted).to_string() title="Accept (a)" disabled=verdict == Verdict::Added on:click=move |_| review.judge(Action::Accept(index))>"✓"</button>
                <button type="button" class="reject" aria-pressed=(verdict == Verdict::Rejected).to_string() title=if verdict == Verdict::Added { "Remove (r)" } else { "Reject (r)" } on:click=move |_| review.judge(Action::Reject(index))>"✗"</button>
                <span class="verdict-name">{verdict.as_str()}</span>
            </td>
        </tr>
    }
}
