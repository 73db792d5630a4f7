//! The rule pipeline end to end: text in, `Prediction` out.

use crate::context::ContextRules;
use crate::doc::Doc;
use crate::findings::FindingRules;
use crate::labeler::RuleLabeler;
use crate::qualifiers::Qualifiers;
use crate::schema::{Finding, FindingSource, Prediction};
use crate::vocab::Vocabulary;

/// The longest report the pipeline accepts, in chars. Longer input is an
/// error, not a silent truncation.
pub const MAX_REPORT_CHARS: usize = 200_000;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InputError {
    #[error("the report is empty")]
    Empty,
    #[error("the report has {0} characters; at most {MAX_REPORT_CHARS} are accepted")]
    TooLong(usize),
    #[error("the report looks like binary data, not text: {non_text} of its {chars} characters are control or replacement characters")]
    Binary { non_text: usize, chars: usize },
}

/// Whether `c` can only come from bytes that were never text: control
/// characters other than line breaks and tabs, and U+FFFD, which decoders put
/// where bytes were not valid UTF-8.
fn is_non_text(c: char) -> bool {
    c == '\u{FFFD}' || (c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\u{0C}'))
}

/// Vocabulary, labeler and coding rules, built once and reused for every report.
#[derive(Debug, Clone)]
pub struct RulePipeline {
    pub vocab: Vocabulary,
    pub labeler: RuleLabeler,
    pub qualifiers: Qualifiers,
    pub findings: FindingRules,
}

impl RulePipeline {
    /// The pipeline with the shipped vocabulary and rules.
    pub fn embedded() -> Self {
        Self::new(
            Vocabulary::embedded(),
            ContextRules::embedded(),
            Qualifiers::embedded(),
        )
    }

    pub fn new(vocab: Vocabulary, rules: ContextRules, qualifiers: Qualifiers) -> Self {
        let labeler = RuleLabeler::new(&vocab, rules);
        Self {
            vocab,
            labeler,
            qualifiers,
            findings: FindingRules::default(),
        }
    }

    /// Refuses input that is not a report: empty, too long, or binary.
    pub fn check(&self, text: &str) -> Result<(), InputError> {
        if text.trim().is_empty() {
            return Err(InputError::Empty);
        }
        let n = text.chars().count();
        if n > MAX_REPORT_CHARS {
            return Err(InputError::TooLong(n));
        }
        // A stray control character is harmless; one in twenty means the text
        // is a pasted binary file, and labelling it would only produce noise.
        let non_text = text.chars().filter(|&c| is_non_text(c)).count();
        if non_text * 20 > n {
            return Err(InputError::Binary { non_text, chars: n });
        }
        Ok(())
    }

    /// Tokenizes and labels `text`, qualifier words included.
    pub fn doc(&self, text: &str) -> Result<Doc, InputError> {
        let mut doc = self.labelled_doc(text)?;
        self.qualifiers.annotate(&mut doc);
        Ok(doc)
    }

    /// Tokenizes and labels `text` but leaves the qualifier words out, for
    /// a caller that adds spans of its own first and then runs
    /// `qualifiers.annotate` once over all of them.
    pub fn labelled_doc(&self, text: &str) -> Result<Doc, InputError> {
        self.check(text)?;
        let mut doc = Doc::new(text);
        self.labeler.annotate(&mut doc, &self.vocab);
        Ok(doc)
    }

    /// The output object of a labelled document.
    pub fn prediction(&self, id: &str, doc: &Doc) -> Prediction {
        let mut findings = self.findings.findings(doc, &self.vocab);
        self.qualify(doc, &mut findings);
        Prediction {
            id: id.to_string(),
            findings,
            entities: self.entities(doc),
            ..Default::default()
        }
    }

    /// The mentions of a labelled document as output entities.
    pub fn entities(&self, doc: &Doc) -> Vec<crate::schema::Entity> {
        doc.entities(&self.vocab, &self.qualifiers)
    }

    /// Gives each finding read from the report (any source but the image
    /// alone) the qualifiers of its concept in `doc`.
    pub fn qualify(&self, doc: &Doc, findings: &mut [Finding]) {
        for f in findings
            .iter_mut()
            .filter(|f| f.source != FindingSource::Image)
        {
            let Some(concept) = self.vocab.find(&f.concept) else {
                continue;
            };
            let ids = self.qualifiers.of_concept(doc, &self.vocab, concept);
            f.qualifiers = ids
                .iter()
                .map(|&q| self.qualifiers.name(q).to_string())
                .collect();
            f.qualifiers_by_kind = self.qualifiers.by_kind(&ids);
        }
    }

    pub fn predict(&self, id: &str, text: &str) -> Result<Prediction, InputError> {
        Ok(self.prediction(id, &self.doc(text)?))
    }
}
