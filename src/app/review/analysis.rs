//! The review session's traffic with the worker and IndexedDB: each case
//! analysed in turn when the models are ready, images stored, checked and
//! shown from the browser's database.

use super::super::idb::{CURRENT, IMAGE_STORE, SESSION_STORE};
use super::super::state::Phase;
use super::super::worker_client::ReplyError;
use super::controller::{now_ms, Review, Stage};
use crate::review::session::Session;
use js_sys::Uint8Array;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};

impl Review {
    /// Shows the current case's image (kept in IndexedDB under its name)
    /// with the strongest image finding's heat map.
    pub(super) fn load_image(self) {
        let (name, strongest) = self
            .with_case_untracked(|case| {
                let strongest = case
                    .prediction
                    .as_ref()
                    .and_then(crate::table::strongest_mapped_finding);
                (case.image.clone(), strongest)
            })
            .unwrap_or_default();
        self.heat_map.set(strongest);
        if let Some((_, old)) = self.image.get_untracked() {
            let _ = web_sys::Url::revoke_object_url(&old);
        }
        self.image.set(None);
        let Some(name) = name else { return };
        spawn_local(async move {
            let Ok(db) = self.db().await else { return };
            if let Ok(Some(blob)) = db.get(IMAGE_STORE, &name).await {
                if let Some(url) = blob
                    .dyn_ref::<web_sys::Blob>()
                    .and_then(|b| web_sys::Url::create_object_url_with_blob(b).ok())
                {
                    self.image.set(Some((name, url)));
                }
            }
        });
    }

    /// Runs the model on every case that has no output yet, one at a time,
    /// whenever the models are ready (again, after a worker restart).
    pub fn analyse_when_ready(self) {
        Effect::new(move |_| {
            let ready = self.app.phase.get() == Phase::Ready;
            let waiting = self
                .session
                .with(|s| s.as_ref().is_some_and(|s| s.unanalysed().next().is_some()));
            if ready && waiting && !self.analysing.get_value() {
                self.analysing.set_value(true);
                spawn_local(async move {
                    self.analyse_pending().await;
                    self.analysing.set_value(false);
                });
            }
        });
    }

    async fn analyse_pending(self) {
        let pending: Vec<usize> = self
            .session
            .with_untracked(|s| s.as_ref().map(|s| s.unanalysed().collect()))
            .unwrap_or_default();
        let total = pending.len();
        for (done, index) in pending.into_iter().enumerate() {
            self.stage.set(Stage::Analysing { done, total });
            let Some((id, text, image)) = self.session.with_untracked(|s| {
                s.as_ref()?
                    .cases
                    .get(index)
                    .map(|c| (c.id.clone(), c.text.clone(), c.image.clone()))
            }) else {
                return;
            };
            let mut problem = None;
            let mut image_request = None;
            if let Some(name) = &image {
                match self.check_image(name).await {
                    Ok(request) => image_request = Some(request),
                    Err(ReplyError::Stopped) => return,
                    Err(e) => problem = Some(format!("its image {name} could not be used ({e}), so the report was analysed alone")),
                }
            }
            let result = if text.trim().is_empty() && image_request.is_none() {
                Err(ReplyError::Refused(
                    problem
                        .take()
                        .unwrap_or_else(|| "nothing to analyse".into()),
                ))
            } else {
                let client = self.client.get_value();
                client
                    .analysis(&id, text, image_request)
                    .await
                    .map(|a| a.prediction)
            };
            if result == Err(ReplyError::Stopped) {
                return;
            }
            self.session.update(|s| {
                if let Some(case) = s.as_mut().and_then(|s| s.cases.get_mut(index)) {
                    match result {
                        Ok(prediction) => {
                            case.analysed(prediction);
                            case.problem = problem;
                        }
                        Err(e) => case.problem = Some(format!("could not be analysed: {e}")),
                    }
                }
            });
            self.save();
        }
        self.last_tick.set_value(now_ms());
        let finished = self
            .session
            .with_untracked(|s| s.as_ref().is_some_and(|s| s.form.is_some()));
        self.stage.set(if finished {
            Stage::Summary
        } else {
            Stage::Cases
        });
        self.load_image();
    }

    async fn check_image(self, name: &str) -> Result<u32, ReplyError> {
        let db = self.db().await.map_err(ReplyError::Refused)?;
        let blob: web_sys::Blob = db
            .get(IMAGE_STORE, name)
            .await
            .map_err(ReplyError::Refused)?
            .and_then(|b| b.dyn_into().ok())
            .ok_or_else(|| ReplyError::Refused("it is not stored in this browser".into()))?;
        let buffer = JsFuture::from(blob.array_buffer())
            .await
            .map_err(|_| ReplyError::Refused("it cannot be read".into()))?;
        let client = self.client.get_value();
        client.checked_image(name, &Uint8Array::new(&buffer)).await
    }

    /// Stores the chosen images and the new session, then analyses it.
    pub async fn begin(self, session: Session, images: Vec<web_sys::File>) {
        let stored = async {
            let db = self.db().await?;
            db.clear().await?;
            self.claim(&db).await?;
            for image in &images {
                db.put(IMAGE_STORE, &image.name(), image).await?;
            }
            db.put(SESSION_STORE, CURRENT, &session.to_json().into())
                .await
        };
        match stored.await {
            Ok(()) => self.saved.update(|n| *n += 1),
            Err(e) => self.fail(
                "The session could not be saved in this browser; it runs, but a reload loses it",
                e,
            ),
        }
        self.show(session);
    }
}
