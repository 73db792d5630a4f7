//! The concept headings an expert can pick when adding or correcting an
//! item (the page offers them as type-ahead suggestions).

use integrabner_core::vocab::Vocabulary;
use integrabner_core::ConceptType;

pub struct Headings(Vec<(String, ConceptType)>);

impl Headings {
    /// The headings of the vocabulary this build ships, sorted by name.
    pub fn embedded() -> Self {
        let mut headings: Vec<(String, ConceptType)> = Vocabulary::embedded()
            .concepts
            .into_iter()
            .map(|c| (c.heading, c.concept_type))
            .collect();
        headings.sort_by_key(|(h, _)| h.to_lowercase());
        Self(headings)
    }

    /// The heading named `name` (ignoring case and surrounding space).
    pub fn find(&self, name: &str) -> Option<(&str, ConceptType)> {
        let name = name.trim();
        self.0
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(name))
            .map(|(h, t)| (h.as_str(), *t))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, ConceptType)> {
        self.0.iter().map(|(h, t)| (h.as_str(), *t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_are_found_ignoring_case() {
        let h = Headings::embedded();
        assert_eq!(
            h.find(" pleural effusion "),
            Some(("Pleural Effusion", ConceptType::Disease))
        );
        assert_eq!(h.find("no such thing"), None);
        assert!(h.iter().count() > 50);
    }
}
