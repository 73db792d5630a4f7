//! The concept headings an expert can pick when adding or correcting an
//! item (the page offers them as type-ahead suggestions), and the
//! qualifier terms a finding may carry.

use integrabner_core::qualifiers::Qualifiers;
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

/// A finding's qualifiers as an expert types them (`left, small`, or as
/// OpenI writes them, `left/small`): each a term of `lexicon`, returned in
/// its order without repeats; none for an empty text.
pub fn parse_qualifiers(text: &str, lexicon: &Qualifiers) -> Result<Vec<String>, String> {
    let mut ids = Vec::new();
    for term in text
        .split([',', ';', '/'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        ids.push(lexicon.find(term).ok_or_else(|| {
            format!(
                "\u{201c}{term}\u{201d} is not an OpenI qualifier; use terms such as left, upper lobe, small or mild, separated by commas"
            )
        })?);
    }
    ids.sort();
    ids.dedup();
    Ok(ids
        .into_iter()
        .map(|q| lexicon.name(q).to_string())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_qualifiers_are_lexicon_terms_in_lexicon_order() {
        let lexicon = Qualifiers::embedded();
        assert_eq!(
            parse_qualifiers(" Small, left / small ", &lexicon),
            Ok(vec!["left".to_string(), "small".to_string()])
        );
        assert_eq!(parse_qualifiers("  ", &lexicon), Ok(Vec::new()));
        let err = parse_qualifiers("left, huge", &lexicon).unwrap_err();
        assert!(err.contains("huge"), "{err}");
    }

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
