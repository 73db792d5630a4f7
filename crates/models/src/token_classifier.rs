//! BERT with a token-classification head, named as Hugging Face's
//! `BertForTokenClassification` (`bert.*`, `classifier.*`).

use crate::bert::{dropout, Bert};
use crate::config::BertConfig;
use candle_core::{Module, Result, Tensor};
use candle_nn::{linear, Linear, VarBuilder};
use integrabner_core::rng::SplitMix64;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenClassifierConfig {
    pub bert: BertConfig,
    /// Tag names, index = class id (`O`, `B-Disease`, `I-Disease`, …).
    pub labels: Vec<String>,
}

pub struct TokenClassifier {
    pub bert: Bert,
    classifier: Linear,
    dropout: f64,
}

impl TokenClassifier {
    pub fn load(vb: VarBuilder, config: &TokenClassifierConfig) -> Result<Self> {
        Ok(Self {
            bert: Bert::load(vb.pp("bert"), &config.bert)?,
            classifier: linear(
                config.bert.hidden_size,
                config.labels.len(),
                vb.pp("classifier"),
            )?,
            dropout: config.bert.hidden_dropout_prob,
        })
    }

    /// Logits `[batch, tokens, labels]`.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        mut rng: Option<&mut SplitMix64>,
    ) -> Result<Tensor> {
        let hidden = self
            .bert
            .forward(input_ids, attention_mask, rng.as_deref_mut())?;
        self.classifier
            .forward(&dropout(&hidden, self.dropout, rng)?)
    }
}
