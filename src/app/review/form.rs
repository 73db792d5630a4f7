//! The guided form: correctness, usefulness and interpretability on 1–5
//! scales and a free comment, per case and once for the session.

use crate::review::session::{Form, FORM_SCALES};
use leptos::prelude::*;

/// The form's fields, named `{prefix}-{scale}` (radio values 1–5) and
/// `{prefix}-comment`; `read` gives the current answers, `write` saves a change.
#[component]
pub fn FormFields(
    prefix: &'static str,
    read: impl Fn() -> Form + Copy + Send + Sync + 'static,
    write: impl Fn(Box<dyn FnOnce(&mut Form)>) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let scales = FORM_SCALES
        .iter()
        .map(|&(scale, question)| {
            let name = format!("{prefix}-{scale}");
            let choices = (1..=5u8)
                .map(|value| {
                    let id = format!("{name}-{value}");
                    view! {
                        <input
                            type="radio"
                            id=id.clone()
                            name=name.clone()
                            value=value.to_string()
                            prop:checked=move || read().scale(scale) == Some(value)
                            on:change=move |_| write(Box::new(move |f| f.set_scale(scale, value)))
                        />
                        <label for=id>{value.to_string()}</label>
                    }
                })
                .collect_view();
            view! {
                <fieldset class="scale">
                    <legend>{question}</legend>
                    <span class="scale-end">"1 poor"</span>
                    {choices}
                    <span class="scale-end">"5 excellent"</span>
                </fieldset>
            }
        })
        .collect_view();
    let comment_id = format!("{prefix}-comment");
    view! {
        <div class="guided-form">
            {scales}
            <label for=comment_id.clone()>"Comment"</label>
            <textarea
                id=comment_id
                rows="2"
                prop:value=move || read().comment
                on:input=move |ev| {
                    let text = event_target_value(&ev);
                    write(Box::new(move |f| f.comment = text));
                }
            ></textarea>
        </div>
    }
}
