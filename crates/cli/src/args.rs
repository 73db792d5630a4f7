//! Arguments several commands share: which split, how uncertain mentions
//! count, and the NER models of the hybrid autolabeler.

use crate::model_dir;
use anyhow::{Context, Result};
use clap::ValueEnum;
use integrabner_core::split::Split;
use integrabner_core::RulePipeline;
use integrabner_train::hybrid::HybridLabeler;
use integrabner_train::ner::NerModel;
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum)]
pub enum SplitArg {
    Train,
    Validation,
    Test,
    All,
}

impl SplitArg {
    /// The one split named, or `None` for all of them.
    fn split(self) -> Option<Split> {
        match self {
            Self::Train => Some(Split::Train),
            Self::Validation => Some(Split::Validation),
            Self::Test => Some(Split::Test),
            Self::All => None,
        }
    }

    pub fn includes(self, s: Split) -> bool {
        self.split().is_none_or(|one| one == s)
    }

    pub fn name(self) -> &'static str {
        self.split().map_or("all", Split::as_str)
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum UncertainArg {
    /// An uncertain mention codes its concept (with probability 0.5).
    Coded,
    /// Only mentions asserted present code a concept.
    Ignored,
}

/// The NER models of the hybrid autolabeler; without them, rules only.
#[derive(clap::Args, Clone)]
pub struct NerModels {
    /// Disease NER model directory (e.g. models/ner/disease); its spans have
    /// source `ner-disease`.
    #[arg(long)]
    pub ner_disease: Option<PathBuf>,
    /// Anatomy NER model directory (e.g. models/ner/anatomy); source `ner-anatomy`.
    #[arg(long)]
    pub ner_anatomy: Option<PathBuf>,
    /// Load the NER model directories without checking their files against
    /// their manifest.json (for a training output, which has none).
    #[arg(long)]
    pub unverified: bool,
}

impl NerModels {
    pub fn labeler(&self) -> Result<HybridLabeler> {
        let mut models = Vec::new();
        for (dir, source) in [
            (&self.ner_disease, "ner-disease"),
            (&self.ner_anatomy, "ner-anatomy"),
        ] {
            if let Some(dir) = dir {
                let trust = model_dir::Trust::from_flag(self.unverified);
                let context = || format!("cannot load the NER model in {}", dir.display());
                let model = match model_dir::read_bert(dir, trust)? {
                    Some([config, weights, tokenizer]) => {
                        NerModel::from_bytes(&config, &weights, &tokenizer)
                    }
                    None => NerModel::load(dir),
                };
                let model = model.with_context(context)?;
                models.push((model, source.to_string()));
            }
        }
        Ok(HybridLabeler {
            pipeline: RulePipeline::embedded(),
            models,
        })
    }

    pub fn system_name(&self) -> &'static str {
        match (&self.ner_disease, &self.ner_anatomy) {
            (None, None) => "rule labeler",
            (Some(_), None) => "rules + disease NER",
            (None, Some(_)) => "rules + anatomy NER",
            (Some(_), Some(_)) => "rules + disease and anatomy NER",
        }
    }
}
