//! The review mode's keyboard, as a pure map from a key press to what it
//! does: tested natively, so the shortcuts the page lists are the ones it
//! runs.

/// What a key press asks of the review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewKey {
    Undo,
    NextCase,
    PreviousCase,
    NextItem,
    PreviousItem,
    Accept,
    Reject,
    /// Accept every item still pending in the case.
    AcceptRest,
    /// Add the selected report text as an entity.
    AddEntity,
}

/// The action of `key` (a `KeyboardEvent.key`) with Ctrl or Cmd held or not;
/// `None` for keys the review leaves to the browser.
pub fn review_key(key: &str, ctrl: bool) -> Option<ReviewKey> {
    Some(match (ctrl, key) {
        (true, "z") | (false, "u") => ReviewKey::Undo,
        (true, _) => return None,
        (_, "ArrowRight" | "n") => ReviewKey::NextCase,
        (_, "ArrowLeft" | "p") => ReviewKey::PreviousCase,
        (_, "ArrowDown" | "j") => ReviewKey::NextItem,
        (_, "ArrowUp" | "k") => ReviewKey::PreviousItem,
        (_, "a") => ReviewKey::Accept,
        (_, "r") => ReviewKey::Reject,
        (_, "A") => ReviewKey::AcceptRest,
        (_, "e") => ReviewKey::AddEntity,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_shortcut_maps_and_the_rest_are_left_alone() {
        let table = [
            ("u", false, ReviewKey::Undo),
            ("z", true, ReviewKey::Undo),
            ("ArrowRight", false, ReviewKey::NextCase),
            ("n", false, ReviewKey::NextCase),
            ("ArrowLeft", false, ReviewKey::PreviousCase),
            ("p", false, ReviewKey::PreviousCase),
            ("ArrowDown", false, ReviewKey::NextItem),
            ("j", false, ReviewKey::NextItem),
            ("ArrowUp", false, ReviewKey::PreviousItem),
            ("k", false, ReviewKey::PreviousItem),
            ("a", false, ReviewKey::Accept),
            ("r", false, ReviewKey::Reject),
            ("A", false, ReviewKey::AcceptRest),
            ("e", false, ReviewKey::AddEntity),
        ];
        for (key, ctrl, action) in table {
            assert_eq!(review_key(key, ctrl), Some(action), "{key} ctrl={ctrl}");
        }
        // Ctrl+A selects text, Ctrl+R reloads, Ctrl+C copies: the browser's.
        for key in ["a", "r", "c", "n", "ArrowRight"] {
            assert_eq!(review_key(key, true), None, "ctrl+{key}");
        }
        for key in ["z", "x", "Enter", " ", "Tab", "Escape"] {
            assert_eq!(review_key(key, false), None, "{key}");
        }
    }
}
