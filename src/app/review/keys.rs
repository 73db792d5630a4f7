//! The review mode's keyboard listener; the map of keys to actions is
//! `crate::review::keys` (pure, tested natively).

use super::controller::{Review, Stage};
use crate::review::keys::{review_key, ReviewKey};
use crate::review::session::Action;
use leptos::ev;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

impl Review {
    /// Keyboard: arrows or n/p for cases, j/k for items, a/r to accept or
    /// reject, Shift+A to accept the rest, u or Ctrl+Z to undo, e to add the
    /// selected text as an entity. Keys typed into a field are left alone.
    pub fn listen_to_keys(self, active: Signal<bool>) {
        let handle = window_event_listener(ev::keydown, move |ev| {
            if !active.get_untracked() || self.stage.get_untracked() != Stage::Cases || ev.alt_key()
            {
                return;
            }
            let in_field = ev
                .target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                .is_some_and(|e| matches!(e.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT"));
            if in_field {
                return;
            }
            let ctrl = ev.ctrl_key() || ev.meta_key();
            let focus = self.focus.get_untracked();
            let Some(key) = review_key(&ev.key(), ctrl) else {
                return;
            };
            ev.prevent_default();
            match key {
                ReviewKey::Undo => self.undo(),
                ReviewKey::NextCase => self.step(1),
                ReviewKey::PreviousCase => self.step(-1),
                ReviewKey::NextItem => self.move_focus(1),
                ReviewKey::PreviousItem => self.move_focus(-1),
                ReviewKey::Accept => self.judge(Action::Accept(focus)),
                ReviewKey::Reject => self.judge(Action::Reject(focus)),
                ReviewKey::AcceptRest => self.judge(Action::AcceptPending),
                ReviewKey::AddEntity => self.add_entity(),
            }
        });
        on_cleanup(move || handle.remove());
    }
}
