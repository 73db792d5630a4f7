//! The hybrid autolabeler: the rule labeler plus NER models. Each model tags
//! the report's own tokens sentence by sentence; its spans become `Mention`s
//! that the rule labeler links to the vocabulary, filters and asserts
//! (`RuleLabeler::annotate_with`), so that every span follows the same rules.

use crate::ner::NerModel;
use anyhow::Result;
use indicatif::ProgressBar;
use integrabner_core::doc::Doc;
use integrabner_core::labeler::Mention;
use integrabner_core::{Prediction, RulePipeline};
use integrabner_models::iob::{spans_of_names, Sentence};

pub struct HybridLabeler {
    pub pipeline: RulePipeline,
    /// Models with the source name their spans carry (`ner-disease`).
    pub models: Vec<(NerModel, String)>,
}

impl HybridLabeler {
    pub fn predict(&self, id: &str, text: &str) -> Result<Prediction> {
        self.pipeline.check(text)?;
        let mut doc = Doc::new(text);
        let sentences: Vec<Sentence> = doc
            .sentences
            .iter()
            .map(|range| Sentence {
                words: doc.tokens[range.clone()]
                    .iter()
                    .map(|t| doc.text[t.bytes.clone()].to_string())
                    .collect(),
                tags: Vec::new(),
            })
            .collect();
        let mut mentions = Vec::new();
        for (model, source) in &self.models {
            let tagged = model.tag(&sentences, &ProgressBar::hidden())?;
            for (range, words) in doc.sentences.iter().zip(tagged) {
                let tags: Vec<&str> = words.iter().map(|(t, _)| t.as_str()).collect();
                for (start, end, _) in spans_of_names(&tags) {
                    let score = words[start..end].iter().map(|w| w.1).fold(1.0, f32::min);
                    mentions.push(Mention {
                        tokens: range.start + start..range.start + end,
                        score,
                        source: source.clone(),
                    });
                }
            }
        }
        self.pipeline
            .labeler
            .annotate_with(&mut doc, &self.pipeline.vocab, &mentions);
        self.pipeline.qualifiers.annotate(&mut doc);
        Ok(self.pipeline.prediction(id, &doc))
    }
}
