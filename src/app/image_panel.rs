//! Image input (drop zone and file picker) and the viewer with zoom,
//! brightness and contrast. The worker decodes each file first, so a corrupt
//! or oversized image is refused with a reason before the page shows it.

use super::state::AppState;
use super::worker_client::WorkerClient;
use integrabner_core::HeatMap;
use js_sys::Uint8Array;
use leptos::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{File, Url};

fn accept(state: AppState, client: StoredValue<WorkerClient, LocalStorage>, file: File) {
    state.notice.set(None);
    let name = file.name();
    let Ok(url) = Url::create_object_url_with_blob(&file) else {
        state.notice.set(Some(format!("Cannot open {name}.")));
        return;
    };
    // Pending from the moment it is chosen: reading a large file takes a
    // while, and Analyze must not use the previous X-ray meanwhile.
    state
        .pending_image
        .set(Some((None, url.clone(), name.clone())));
    let still_ours = move |url: &str| {
        state
            .pending_image
            .with_untracked(|p| p.as_ref().is_some_and(|(_, u, _)| u == url))
    };
    wasm_bindgen_futures::spawn_local(async move {
        let bytes = match JsFuture::from(file.array_buffer()).await {
            Ok(buffer) => Uint8Array::new(&buffer),
            Err(_) => {
                state.notice.set(Some(format!("Cannot read {name}.")));
                if still_ours(&url) {
                    state.pending_image.set(None);
                }
                let _ = Url::revoke_object_url(&url);
                return;
            }
        };
        let Some(sent) = client.with_value(|c| c.check_image(&name, &bytes)) else {
            if still_ours(&url) {
                state.pending_image.set(None);
            }
            let _ = Url::revoke_object_url(&url);
            state
                .notice
                .set(Some("The analysis worker is not running.".into()));
            return;
        };
        let request = sent.request;
        state.pending_image.set(Some((Some(request), url, name)));
        match WorkerClient::image_checked(sent).await {
            Ok(image) => state.image_checked(image),
            Err(e) => state.reply_failed(request, &e),
        }
    });
}

#[component]
pub fn ImageInput(
    state: AppState,
    client: StoredValue<WorkerClient, LocalStorage>,
) -> impl IntoView {
    let dragging = RwSignal::new(false);
    view! {
        <div
            class="drop-zone"
            class:dragging=move || dragging.get()
            on:dragover=move |ev| {
                ev.prevent_default();
                dragging.set(true);
            }
            on:dragleave=move |_| dragging.set(false)
            on:drop=move |ev| {
                ev.prevent_default();
                dragging.set(false);
                if let Some(file) = ev.data_transfer().and_then(|d| d.files()).and_then(|f| f.get(0)) {
                    accept(state, client, file);
                }
            }
        >
            <label for="image-input">"Chest X-ray (PNG or JPEG): drop it here or choose a file "</label>
            <input
                id="image-input"
                type="file"
                accept="image/png,image/jpeg"
                on:change=move |ev| {
                    let input: web_sys::HtmlInputElement = event_target(&ev);
                    if let Some(file) = input.files().and_then(|f| f.get(0)) {
                        accept(state, client, file);
                    }
                    input.set_value("");
                }
            />
        </div>
    }
}

#[component]
pub fn ImageViewer(state: AppState) -> impl IntoView {
    let zoom = RwSignal::new(100u32);
    let brightness = RwSignal::new(100u32);
    let contrast = RwSignal::new(100u32);
    let slider = move |id: &'static str, label: &'static str, value: RwSignal<u32>, max: u32| {
        view! {
            <label for=id>{label}</label>
            <input
                id=id
                type="range"
                min="25"
                max=max.to_string()
                step="5"
                prop:value=move || value.get().to_string()
                on:input=move |ev| value.set(event_target_value(&ev).parse().unwrap_or(100))
            />
        }
    };
    view! {
        {move || {
            state
                .image
                .get()
                .map(|img| {
                    let note = if state.bundle.get().is_some_and(|b| b.image_model) {
                        String::new()
                    } else {
                        "This bundle has no image model yet: the image is shown for reading, findings come from the report."
                            .to_string()
                    };
                    view! {
                        <figure id="image-view" data-width=img.width data-height=img.height>
                            <figcaption>
                                {format!("{} · {} × {} px", img.name, img.width, img.height)}
                                <span id="abnormal" class="note">
                                    {move || {
                                        state
                                            .shown
                                            .with(|r| r.as_ref().and_then(|a| a.evidence.abnormal))
                                            .map(|p| format!(" · image model: abnormal {:.0}%", p * 100.0))
                                    }}
                                </span>
                                <span class="note">{note}</span>
                            </figcaption>
                            <div class="image-controls">
                                {slider("zoom", "Zoom", zoom, 400)}
                                {slider("brightness", "Brightness", brightness, 200)}
                                {slider("contrast", "Contrast", contrast, 300)}
                            </div>
                            <div class="image-frame">
                                <div class="image-stack" style:width=move || format!("{}%", zoom.get())>
                                    <img
                                        src=img.url.clone()
                                        alt=format!("Chest X-ray {}", img.name)
                                        style:filter=move || {
                                            format!("brightness({}%) contrast({}%)", brightness.get(), contrast.get())
                                        }
                                    />
                                    {move || heat_map_overlay(state)}
                                </div>
                            </div>
                            <p class="heat-map-caption" hidden=move || state.heat_map.get().is_none()>
                                {move || {
                                    state
                                        .heat_map
                                        .get()
                                        .map(|c| format!("Heat map: where the image model saw {c} (class activation map; red is strongest). Select another finding's \u{201c}heat map\u{201d} to compare."))
                                }}
                            </p>
                        </figure>
                    }
                })
        }}
    }
}

/// The selected finding's heat map as an SVG over the image: one cell per
/// position of the encoder's coarsest feature map, blurred, red where the
/// finding's evidence is strongest. The grid covers the encoder's square
/// input; `region` says where the picture lies in it, so the SVG is sized
/// and shifted to make the picture's part line up with the image.
fn heat_map_overlay(state: AppState) -> Option<impl IntoView> {
    let concept = state.heat_map.get()?;
    let map = state.shown.with(|r| {
        r.as_ref()?
            .prediction
            .heat_maps
            .iter()
            .find(|h| h.concept == concept)
            .cloned()
    })?;
    Some(heat_map_svg(&map))
}

/// An image finding's "heat map" button: draws its map over the image
/// (`selected` names the finding drawn), or hides it again.
#[component]
pub fn HeatMapToggle(selected: RwSignal<Option<String>>, concept: String) -> impl IntoView {
    let shown = concept.clone();
    view! {
        <button
            type="button"
            class="show-heat-map"
            aria-pressed=move || (selected.get().as_deref() == Some(shown.as_str())).to_string()
            title="Draw where the image model saw this finding over the image"
            on:click=move |_| {
                let c = concept.clone();
                selected.update(|h| *h = if h.as_deref() == Some(c.as_str()) { None } else { Some(c) });
            }
        >
            "heat map"
        </button>
    }
}

/// One heat map as an SVG sized and placed over its image (see above).
pub fn heat_map_svg(map: &HeatMap) -> impl IntoView {
    let [left, top, right, bottom] = map.region;
    let (w, h) = ((right - left).max(1e-3), (bottom - top).max(1e-3));
    let cells = map
        .values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let (row, col) = (i / map.cols.max(1), i % map.cols.max(1));
            view! {
                <rect
                    x=col.to_string()
                    y=row.to_string()
                    width="1"
                    height="1"
                    fill=format!("hsl({:.0}, 100%, 50%)", 60.0 * (1.0 - v))
                    fill-opacity=format!("{:.2}", 0.7 * v)
                />
            }
        })
        .collect_view();
    view! {
        <svg
            id="heat-map"
            class="heat-map"
            data-concept=map.concept.clone()
            role="img"
            aria-label="Heat map of the selected image finding"
            viewBox=format!("0 0 {} {}", map.cols, map.rows)
            preserveAspectRatio="none"
            style:left=format!("{:.2}%", -100.0 * left / w)
            style:top=format!("{:.2}%", -100.0 * top / h)
            style:width=format!("{:.2}%", 100.0 / w)
            style:height=format!("{:.2}%", 100.0 / h)
        >
            {cells}
        </svg>
    }
}
