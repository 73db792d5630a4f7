//! The review session's state and every change to it. Each change goes
//! through [`Review::change`], which counts reviewing time and saves.

use super::super::idb::{Db, CURRENT, HOLDER, SESSION_STORE};
use super::super::state::AppState;
use super::super::worker_client::WorkerClient;
use crate::review::session::{Action, Case, Item, Reading, Session, Undo};
use crate::review::vocabulary::{parse_qualifiers, Headings};
use integrabner_core::qualifiers::Qualifiers;
use integrabner_core::{Assertion, ConceptType};
use leptos::prelude::*;
use wasm_bindgen_futures::spawn_local;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading a saved session.
    Opening,
    /// No session: choose files.
    Start,
    Analysing {
        done: usize,
        total: usize,
    },
    Cases,
    Summary,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opening => "opening",
            Self::Start => "start",
            Self::Analysing { .. } => "analysing",
            Self::Cases => "cases",
            Self::Summary => "summary",
        }
    }
}

/// The "add" controls: what a new entity or finding will say.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub concept_type: ConceptType,
    pub concept: String,
    pub assertion: Assertion,
}

#[derive(Clone, Copy)]
pub struct Review {
    pub app: AppState,
    pub(super) client: StoredValue<WorkerClient, LocalStorage>,
    pub session: RwSignal<Option<Session>>,
    pub stage: RwSignal<Stage>,
    /// The item of the current case that the keyboard acts on.
    pub focus: RwSignal<usize>,
    pub message: RwSignal<Option<String>>,
    /// How many saves have completed: lets a test (or a cautious user) see
    /// that the last judgment is on disk.
    pub saved: RwSignal<u32>,
    /// Another tab opened the session since this one did: that tab holds it
    /// now, and this one saves nothing more.
    pub held_elsewhere: RwSignal<bool>,
    /// This tab's token in the store's `holder` key while it holds the session.
    tab: StoredValue<String>,
    /// The current case's image as a `blob:` URL, with its file name.
    pub image: RwSignal<Option<(String, String)>>,
    /// The image finding whose heat map is drawn.
    pub heat_map: RwSignal<Option<String>>,
    pub draft: RwSignal<Draft>,
    /// The report text the expert selected: char offsets and the text.
    pub selection: RwSignal<Option<(usize, usize, String)>>,
    pub headings: StoredValue<Headings>,
    /// The qualifier terms an expert may give a finding.
    pub qualifiers: StoredValue<Qualifiers>,
    pub(super) undo: StoredValue<Vec<Undo>>,
    pub(super) last_tick: StoredValue<f64>,
    pub(super) db: StoredValue<Option<Db>, LocalStorage>,
    pub(super) analysing: StoredValue<bool>,
}

pub(super) fn now_ms() -> f64 {
    window().performance().map(|p| p.now()).unwrap_or(0.0)
}

impl Review {
    pub fn new(app: AppState, client: StoredValue<WorkerClient, LocalStorage>) -> Self {
        Self {
            app,
            client,
            session: RwSignal::new(None),
            stage: RwSignal::new(Stage::Opening),
            focus: RwSignal::new(0),
            message: RwSignal::new(None),
            saved: RwSignal::new(0),
            held_elsewhere: RwSignal::new(false),
            tab: StoredValue::new(format!(
                "{:x}-{:x}",
                js_sys::Date::now() as u64,
                (js_sys::Math::random() * 1e15) as u64
            )),
            image: RwSignal::new(None),
            heat_map: RwSignal::new(None),
            draft: RwSignal::new(Draft {
                concept_type: ConceptType::Finding,
                concept: String::new(),
                assertion: Assertion::Present,
            }),
            selection: RwSignal::new(None),
            headings: StoredValue::new(Headings::embedded()),
            qualifiers: StoredValue::new(Qualifiers::embedded()),
            undo: StoredValue::new(Vec::new()),
            last_tick: StoredValue::new(now_ms()),
            db: StoredValue::new_local(None),
            analysing: StoredValue::new(false),
        }
    }

    pub(super) async fn db(self) -> Result<Db, String> {
        if let Some(db) = self.db.get_value() {
            return Ok(db);
        }
        let db = Db::open().await?;
        self.db.set_value(Some(db.clone()));
        Ok(db)
    }

    pub(super) fn fail(self, what: &str, error: String) {
        self.message.set(Some(format!("{what}: {error}")));
    }

    /// Makes this tab the one that saves the session: another tab that held
    /// it finds out at its next save and stops. Any save of that tab that
    /// came first is in the store before this tab reads it.
    pub(super) async fn claim(self, db: &Db) -> Result<(), String> {
        self.held_elsewhere.set(false);
        db.put(SESSION_STORE, HOLDER, &self.tab.get_value().into())
            .await
    }

    /// Reads the saved session, if any, and shows it where it was left.
    pub fn resume(self) {
        spawn_local(async move {
            let saved = match self.db().await {
                Ok(db) => match self.claim(&db).await {
                    Ok(()) => db.get(SESSION_STORE, CURRENT).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match saved {
                Ok(Some(json)) => match Session::from_json(&json.as_string().unwrap_or_default()) {
                    Ok(session) => self.show(session),
                    Err(e) => {
                        self.fail("The saved session cannot be read, and is kept as it is until you start a new one", e.to_string());
                        self.stage.set(Stage::Start);
                    }
                },
                Ok(None) => self.stage.set(Stage::Start),
                Err(e) => {
                    self.fail("Sessions cannot be saved in this browser", e);
                    self.stage.set(Stage::Start);
                }
            }
        });
    }

    /// Reads the case on screen (tracked, for views).
    pub fn with_case<R>(self, f: impl FnOnce(&Case) -> R) -> Option<R> {
        self.session.with(|s| s.as_ref()?.case().map(f))
    }

    /// Reads the case on screen (untracked, for handlers).
    pub fn with_case_untracked<R>(self, f: impl FnOnce(&Case) -> R) -> Option<R> {
        self.session.with_untracked(|s| s.as_ref()?.case().map(f))
    }

    /// Shows a session just started, imported or resumed.
    pub fn show(self, session: Session) {
        let unanalysed = session.unanalysed().count();
        let stage = if unanalysed > 0 {
            Stage::Analysing {
                done: 0,
                total: unanalysed,
            }
        } else if session.form.is_some() {
            Stage::Summary
        } else {
            Stage::Cases
        };
        self.undo.set_value(Vec::new());
        self.focus.set(0);
        self.last_tick.set_value(now_ms());
        self.session.set(Some(session));
        self.stage.set(stage);
        self.load_image();
    }

    /// Writes the session to IndexedDB while this tab holds it
    /// (transactions run in order, so the last change always wins).
    pub fn save(self) {
        let Some(json) = self
            .session
            .with_untracked(|s| s.as_ref().map(Session::to_json))
        else {
            return;
        };
        let tab = self.tab.get_value();
        spawn_local(async move {
            let holds = move |holder: Option<wasm_bindgen::JsValue>| {
                holder.and_then(|h| h.as_string()).as_deref() == Some(tab.as_str())
            };
            let result = match self.db().await {
                Ok(db) => {
                    db.put_if(SESSION_STORE, HOLDER, holds, CURRENT, json.into())
                        .await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(true) => self.saved.update(|n| *n += 1),
                Ok(false) => self.hand_over(),
                Err(e) => self.fail(
                    "This change could not be saved in the browser (export the session to keep it)",
                    e,
                ),
            }
        });
    }

    /// Another tab holds the session: say so, and take no more changes here
    /// (they could not be saved without overwriting that tab's).
    fn hand_over(self) {
        self.held_elsewhere.set(true);
        self.message.set(Some(
            "This session is open in another tab of this browser, which saves it from now on; the last change here was not saved. Reload this tab to continue the session here.".into(),
        ));
    }

    /// Changes the session: counts the time since the last change to the
    /// case on screen, applies `f`, saves.
    pub fn change<R>(self, f: impl FnOnce(&mut Session) -> R) -> Option<R> {
        if self.held_elsewhere.get_untracked() {
            self.hand_over();
            return None;
        }
        let now = now_ms();
        let elapsed = now - self.last_tick.get_value();
        self.last_tick.set_value(now);
        let out = self.session.try_update(|s| {
            s.as_mut().map(|s| {
                s.spend(elapsed);
                f(s)
            })
        })??;
        self.save();
        Some(out)
    }

    /// Applies a judgment; it can be undone.
    pub fn judge(self, action: Action) {
        let advance = matches!(action, Action::Accept(_) | Action::Reject(_));
        if let Some(Some(undo)) = self.change(|s| s.apply(action)) {
            self.undo.update_value(|u| u.push(undo));
            if advance {
                self.move_focus(1);
            }
        }
    }

    pub fn undo(self) {
        let Some(undo) = self.undo.try_update_value(|u| u.pop()).flatten() else {
            self.message.set(Some("Nothing to undo.".into()));
            return;
        };
        self.change(|s| s.undo(undo));
        self.after_navigation();
    }

    pub fn go_to(self, index: usize) {
        let before = self.current();
        self.change(|s| s.go_to(index));
        if self.current() != before {
            self.focus.set(0);
            self.after_navigation();
        }
    }

    pub fn step(self, delta: isize) {
        if let Some(current) = self.current() {
            self.go_to(current.saturating_add_signed(delta));
        }
    }

    pub(super) fn after_navigation(self) {
        self.selection.set(None);
        self.load_image();
    }

    pub fn current(self) -> Option<usize> {
        self.session
            .with_untracked(|s| s.as_ref().map(|s| s.current))
    }

    pub fn item_count(self) -> usize {
        self.with_case_untracked(|c| c.items.len()).unwrap_or(0)
    }

    pub fn move_focus(self, delta: isize) {
        let n = self.item_count();
        if n > 0 {
            self.focus
                .update(|f| *f = f.saturating_add_signed(delta).min(n - 1));
            // Keep the focused row on screen in a long list.
            let selector = format!(
                "tr[data-review-item][data-index=\"{}\"]",
                self.focus.get_untracked()
            );
            if let Ok(Some(row)) = document().query_selector(&selector) {
                let options = web_sys::ScrollIntoViewOptions::new();
                options.set_block(web_sys::ScrollLogicalPosition::Nearest);
                row.scroll_into_view_with_scroll_into_view_options(&options);
            }
        }
    }

    /// A reading of `concept` from the vocabulary (its type wins over the
    /// type control); an empty concept keeps the control's type.
    pub fn reading_of(
        self,
        concept: &str,
        concept_type: ConceptType,
        assertion: Assertion,
    ) -> Result<Reading, String> {
        if concept.trim().is_empty() {
            return Ok(Reading {
                concept_type,
                concept: None,
                assertion,
                qualifiers: Vec::new(),
            });
        }
        self.headings.with_value(|h| {
            h.find(concept)
                .map(|(heading, t)| Reading {
                    concept_type: t,
                    concept: Some(heading.to_string()),
                    assertion,
                    qualifiers: Vec::new(),
                })
                .ok_or_else(|| {
                    format!(
                        "\u{201c}{}\u{201d} is not in the vocabulary; pick one of the suggestions",
                        concept.trim()
                    )
                })
        })
    }

    /// The qualifiers an expert typed for a finding (see `parse_qualifiers`).
    pub fn qualifiers_of(self, text: &str) -> Result<Vec<String>, String> {
        self.qualifiers
            .with_value(|lexicon| parse_qualifiers(text, lexicon))
    }

    /// Adds the selected report text as an entity the model missed.
    pub fn add_entity(self) {
        let Some((start, end, _)) = self.selection.get_untracked() else {
            self.message.set(Some(
                "Select words of the report first, then add them as an entity.".into(),
            ));
            return;
        };
        let draft = self.draft.get_untracked();
        let item = self
            .reading_of(&draft.concept, draft.concept_type, draft.assertion)
            .and_then(|reading| {
                self.with_case_untracked(|c| c.entity_at(start, end, reading))
                    .unwrap_or_else(|| Err("no case is open".into()))
            });
        self.added(item);
    }

    /// Adds a coded finding the model missed.
    pub fn add_finding(self) {
        let draft = self.draft.get_untracked();
        if draft.concept.trim().is_empty() {
            self.message.set(Some(
                "Type the finding's concept first (suggestions appear as you type).".into(),
            ));
            return;
        }
        let item = self
            .reading_of(&draft.concept, draft.concept_type, Assertion::Present)
            .and_then(|reading| {
                self.with_case_untracked(|c| c.finding(reading))
                    .unwrap_or_else(|| Err("no case is open".into()))
            });
        self.added(item);
    }

    fn added(self, item: Result<Item, String>) {
        match item {
            Ok(item) => {
                self.message.set(None);
                self.judge(Action::Add(item));
                self.selection.set(None);
                self.focus.set(self.item_count().saturating_sub(1));
            }
            Err(e) => self.message.set(Some(super::super::state::capitalized(&e))),
        }
    }

    /// Deletes the saved session and its images from this browser.
    pub fn close(self) {
        spawn_local(async move {
            if let Ok(db) = self.db().await {
                if let Err(e) = db.clear().await {
                    self.fail("The saved session could not be deleted", e);
                }
            }
            self.session.set(None);
            self.undo.set_value(Vec::new());
            self.message.set(None);
            self.stage.set(Stage::Start);
        });
    }
}
