//! Starting a session: the expert picks a case file (JSONL, CSV or an OpenI
//! `.tgz`) with its images, or a session exported earlier.

use super::super::state::Phase;
use super::controller::Review;
use crate::review::cases::read_cases;
use crate::review::session::{ModelVersion, Session};
use js_sys::Uint8Array;
use leptos::prelude::*;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::File;

/// Largest case file read (the whole OpenI archive is about 1 MB).
const MAX_CASE_FILE_BYTES: f64 = 200.0 * 1024.0 * 1024.0;

fn is_image(file: &File) -> bool {
    let name = file.name().to_lowercase();
    file.type_().starts_with("image/")
        || [".png", ".jpg", ".jpeg"].iter().any(|e| name.ends_with(e))
}

async fn bytes_of(file: &File) -> Result<Vec<u8>, String> {
    if file.size() > MAX_CASE_FILE_BYTES {
        return Err(format!(
            "{} is {:.0} MB; a case file may have at most 200 MB",
            file.name(),
            file.size() / 1048576.0
        ));
    }
    let buffer = JsFuture::from(file.array_buffer())
        .await
        .map_err(|_| format!("{} cannot be read", file.name()))?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// Builds the session the chosen files describe.
async fn session_from(
    review: Review,
    files: &[File],
    images: &[File],
) -> Result<(Session, Vec<String>), String> {
    let [file] = files else {
        return Err(format!(
            "choose one case file (.jsonl, .csv, .tgz or an exported .json) with its images; {} were chosen",
            files.len()
        ));
    };
    let name = file.name();
    let bytes = bytes_of(file).await?;
    if name.to_lowercase().ends_with(".json") {
        let session = Session::from_json(&String::from_utf8_lossy(&bytes))
            .map_err(|e| format!("{name}: {e}"))?;
        return Ok((session, Vec::new()));
    }
    let bundle = review
        .app
        .bundle
        .get_untracked()
        .filter(|_| review.app.phase.get_untracked() == Phase::Ready);
    let Some(bundle) = bundle else {
        return Err(
            "the models are still loading; choose the files again when the status says ready"
                .into(),
        );
    };
    let image_names: Vec<String> = images.iter().map(File::name).collect();
    let parsed = read_cases(&name, &bytes, &image_names)?;
    let model = ModelVersion {
        bundle: bundle.version,
        vocabulary: bundle.vocabulary_version,
    };
    let mut source = vec![name];
    source.extend(image_names);
    Ok((
        Session::new(source, model, js_sys::Date::now(), parsed.cases),
        parsed.problems,
    ))
}

fn start(review: Review, chosen: Vec<File>) {
    review.message.set(None);
    spawn_local(async move {
        let (images, files): (Vec<File>, Vec<File>) = chosen.into_iter().partition(is_image);
        match session_from(review, &files, &images).await {
            Ok((session, problems)) => {
                // Only the images that some case names are kept.
                let used: Vec<File> = images
                    .into_iter()
                    .filter(|i| {
                        session
                            .cases
                            .iter()
                            .any(|c| c.image.as_deref() == Some(i.name().as_str()))
                    })
                    .collect();
                if !problems.is_empty() {
                    let shown: Vec<&str> = problems.iter().take(5).map(String::as_str).collect();
                    let more = problems.len().saturating_sub(shown.len());
                    review.message.set(Some(format!(
                        "{} cases; {} notes: {}{}",
                        session.cases.len(),
                        problems.len(),
                        shown.join("; "),
                        if more > 0 {
                            format!("; and {more} more")
                        } else {
                            String::new()
                        }
                    )));
                }
                review.begin(session, used).await;
            }
            Err(e) => review
                .message
                .set(Some(super::super::state::capitalized(&e))),
        }
    });
}

#[component]
pub fn StartPanel(review: Review) -> impl IntoView {
    view! {
        <div class="review-start">
            <h2>"Review the model, case by case"</h2>
            <p>
                "Choose a file of reports and, alongside it, the images it names. Every case is analysed in this page; "
                "you accept, reject or correct each entity and finding, add what the model missed, and rate each case. "
                "Each judgment is saved in this browser as you make it; nothing is sent anywhere."
            </p>
            <ul>
                <li>"JSONL: one object per line, " <code>"{\"id\": \"c1\", \"text\": \"…\", \"image\": \"c1.png\"}"</code> " (image optional)"</li>
                <li>"CSV: columns " <code>"id,text,image"</code> " (image optional)"</li>
                <li>"OpenI: the reports archive " <code>"NLMCXR_reports.tgz"</code> ", with any of its PNG images"</li>
                <li>"A session exported earlier (" <code>".json"</code> "), with its images, to go on with it here"</li>
            </ul>
            <label for="review-files" class="field-label">"Case file and images "</label>
            <input
                id="review-files"
                type="file"
                multiple
                accept=".jsonl,.ndjson,.csv,.tgz,.gz,.json,image/png,image/jpeg"
                on:change=move |ev| {
                    let input: web_sys::HtmlInputElement = event_target(&ev);
                    let files = input
                        .files()
                        .map(|list| (0..list.length()).filter_map(|i| list.get(i)).collect())
                        .unwrap_or_default();
                    input.set_value("");
                    start(review, files);
                }
            />
        </div>
    }
}
