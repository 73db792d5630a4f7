//! What the report model learns from: each OpenI report with its split, its
//! manual coding and the silver spans `integrabner label` wrote for it.

use super::LabelledReport;
use crate::coding_eval::gold_labels;
use crate::qualifier_eval::gold_codings;
use crate::source::{load_corpus, read_split_file};
use anyhow::{bail, Context, Result};
use integrabner_core::openi::Corpus;
use integrabner_core::split::Split;
use integrabner_core::{Entity, Prediction, RulePipeline};
use std::collections::HashMap;
use std::path::Path;

/// Silver spans by report id: the entities of a `label` output.
#[derive(Default)]
pub struct Silver {
    name: String,
    entities: HashMap<String, Vec<Entity>>,
}

impl Silver {
    /// Reads a `label` output (JSONL of predictions), named `name` in errors.
    pub fn parse(text: &str, name: &str) -> Result<Self> {
        let mut entities = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let p: Prediction =
                serde_json::from_str(line).with_context(|| format!("{name}: line {}", i + 1))?;
            entities.insert(p.id, p.entities);
        }
        Ok(Self {
            name: name.to_string(),
            entities,
        })
    }
}

/// Where the report model learns from: the OpenI reports, the split file,
/// and the silver spans of `integrabner label`.
pub struct ReportSources<'a> {
    /// An OpenI `.tgz`, XML directory or `indiana_reports.csv`.
    pub reports: &'a Path,
    pub split_file: &'a Path,
    /// A `label` output (read only when spans are asked for).
    pub silver: &'a Path,
}

impl ReportSources<'_> {
    /// The reports of each split with their gold coding, and their silver
    /// spans; a report of a split in `spans_of` must have them (the others
    /// get none; with no such split the silver file is not read).
    pub fn load(
        &self,
        rules: &RulePipeline,
        spans_of: &[Split],
    ) -> Result<HashMap<Split, Vec<LabelledReport>>> {
        let corpus = load_corpus(self.reports, None)?;
        let assigned = read_split_file(self.split_file)?;
        let silver = if spans_of.is_empty() {
            Silver::default()
        } else {
            let text = std::fs::read_to_string(self.silver)
                .with_context(|| format!("cannot read {}", self.silver.display()))?;
            Silver::parse(&text, &self.silver.display().to_string())?
        };
        labelled_reports(&corpus, &assigned, &silver, rules, spans_of)
    }
}

/// The reports of each split with their gold coding, and their silver
/// spans; a report of a split in `spans_of` must have them (the others get
/// none).
pub fn labelled_reports(
    corpus: &Corpus,
    assigned: &HashMap<String, Split>,
    silver: &Silver,
    rules: &RulePipeline,
    spans_of: &[Split],
) -> Result<HashMap<Split, Vec<LabelledReport>>> {
    let mut out: HashMap<Split, Vec<LabelledReport>> = HashMap::new();
    for r in &corpus.reports {
        let split = *assigned
            .get(&r.id)
            .with_context(|| format!("report {} is not in the split file", r.id))?;
        let entities = match silver.entities.get(&r.id) {
            Some(e) => e.clone(),
            None if !spans_of.contains(&split) => Vec::new(),
            None => bail!(
                "report {} ({} split) has no silver annotations in {}; label that split with `integrabner label`",
                r.id,
                split.as_str(),
                silver.name
            ),
        };
        out.entry(split).or_default().push(LabelledReport {
            id: r.id.clone(),
            text: r.text(),
            silver: entities,
            gold: gold_labels(r, &rules.vocab),
            codings: gold_codings(r, &rules.vocab),
        });
    }
    Ok(out)
}
