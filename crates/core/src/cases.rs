//! A line of a case file (JSONL): the one reading of it, for `integrabner
//! predict` and the review mode alike.

use serde::Deserialize;

/// What a case-file line looks like, for messages.
pub const CASE_LINE_SHAPE: &str = "{\"id\": str or number, \"text\"?: str (or \"report\"), \"image\"?: path, \"images\"?: [path]}";

/// One case: a report, images (file paths or names as written), or both.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseLine {
    /// `None` when the line has none; the reader names the case.
    pub id: Option<String>,
    pub text: String,
    /// `image`, then `images`.
    pub images: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(serde_json::Number),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(default)]
    id: Option<Id>,
    #[serde(default, alias = "report")]
    text: Option<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    images: Vec<String>,
}

impl CaseLine {
    /// Reads one non-blank line; an unknown field is refused, so that a
    /// misspelt `"txt"` is not read as a case without a report.
    pub fn parse(line: &str) -> Result<Self, String> {
        let line: Line =
            serde_json::from_str(line).map_err(|e| format!("expected {CASE_LINE_SHAPE} ({e})"))?;
        let id = match line.id {
            Some(Id::Text(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(Id::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Ok(Self {
            id,
            text: line.text.unwrap_or_default(),
            images: line.image.into_iter().chain(line.images).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_ids_texts_and_images_and_refuse_unknown_fields() {
        let l = CaseLine::parse(
            r#"{"id": 7, "report": "No effusion.", "image": "a.png", "images": ["b.png"]}"#,
        )
        .unwrap();
        assert_eq!(l.id.as_deref(), Some("7"));
        assert_eq!(l.text, "No effusion.");
        assert_eq!(l.images, ["a.png", "b.png"]);
        assert_eq!(CaseLine::parse(r#"{"text": "x"}"#).unwrap().id, None);
        assert_eq!(
            CaseLine::parse(r#"{"id": " ", "text": "x"}"#).unwrap().id,
            None
        );
        let err = CaseLine::parse(r#"{"id": "a", "txt": "x"}"#).unwrap_err();
        assert!(err.contains("unknown field `txt`"), "{err}");
        assert!(CaseLine::parse("[1, 2]")
            .unwrap_err()
            .starts_with("expected {"));
    }
}
