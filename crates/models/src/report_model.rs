//! The report model: one BERT encoder with three heads.
//!
//! 1. `entity_classifier`: BIO tags over ANATOMY, DISEASE, FINDING, DEVICE,
//!    on each word's first piece.
//! 2. `assertion_classifier`: present / absent / uncertain of an entity, from
//!    the mean of its pieces' hidden states.
//! 3. `findings_classifier`: document-level coded findings (one sigmoid per
//!    vocabulary concept) from the mean of the hidden states of the real
//!    tokens (padding excluded), concatenated with the rule labeler's
//!    evidence vector (zeros when the rules are left out).

use crate::bert::{dropout, Bert};
use crate::config::BertConfig;
use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{linear, Linear, VarBuilder};
use integrabner_core::rng::SplitMix64;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportModelConfig {
    pub bert: BertConfig,
    /// BIO tags, index = class id (`O`, `B-ANATOMY`, `I-ANATOMY`, …).
    pub entity_labels: Vec<String>,
    /// Assertion classes, index = class id (`present`, `absent`, `uncertain`).
    pub assertions: Vec<String>,
    /// The findings head's outputs: vocabulary headings, in vocabulary order.
    pub concepts: Vec<String>,
    /// The vocabulary version the heads were trained against.
    pub vocabulary_version: String,
    /// Width of the rule evidence vector read by the findings head.
    pub rule_features: usize,
    /// Word pieces per window ([CLS] and [SEP] included) and the step between windows.
    pub max_len: usize,
    pub stride: usize,
    /// Calibration and decision, fitted on the validation split: finding
    /// probability = sigmoid(logit / temperature), coded when at least `threshold`.
    #[serde(default = "one")]
    pub temperature: f32,
    #[serde(default = "half")]
    pub threshold: f32,
    /// How each concept of `concepts` is decided, fitted on the validation
    /// split (`integrabner report decide`); empty: by the model for all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<Decision>,
}

/// Who codes a concept: the model (probability at least the threshold), the
/// rule labeler, either of them, or both together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    #[default]
    Model,
    Rules,
    Either,
    Both,
}

impl Decision {
    pub const ALL: [Self; 4] = [Self::Model, Self::Rules, Self::Either, Self::Both];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Rules => "rules",
            Self::Either => "either",
            Self::Both => "both",
        }
    }

    /// Whether the concept is coded, and with which probability: the
    /// model's when it is among the voters that say yes, else the rules'.
    pub fn decide(self, model: f32, threshold: f32, rules: Option<f32>) -> Option<Decided> {
        let by_model = model >= threshold;
        let coded = match self {
            Self::Model => by_model,
            Self::Rules => rules.is_some(),
            Self::Either => by_model || rules.is_some(),
            Self::Both => by_model && rules.is_some(),
        };
        if !coded {
            return None;
        }
        let model_voted = by_model && self != Self::Rules;
        Some(match rules {
            Some(p) if !model_voted => Decided::Rules(p),
            _ => Decided::Model(model),
        })
    }
}

/// A coded concept with the probability of whoever coded it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decided {
    Model(f32),
    Rules(f32),
}

impl ReportModelConfig {
    /// Who codes concept `i` of `concepts`.
    pub fn decision(&self, i: usize) -> Decision {
        self.decisions.get(i).copied().unwrap_or_default()
    }
}

fn one() -> f32 {
    1.0
}

fn half() -> f32 {
    0.5
}

pub struct ReportModel {
    pub bert: Bert,
    entity_classifier: Linear,
    assertion_classifier: Linear,
    findings_classifier: Linear,
    dropout: f64,
}

impl ReportModel {
    pub fn load(vb: VarBuilder, config: &ReportModelConfig) -> Result<Self> {
        let hidden = config.bert.hidden_size;
        Ok(Self {
            bert: Bert::load(vb.pp("bert"), &config.bert)?,
            entity_classifier: linear(
                hidden,
                config.entity_labels.len(),
                vb.pp("entity_classifier"),
            )?,
            assertion_classifier: linear(
                hidden,
                config.assertions.len(),
                vb.pp("assertion_classifier"),
            )?,
            findings_classifier: linear(
                hidden + config.rule_features,
                config.concepts.len(),
                vb.pp("findings_classifier"),
            )?,
            dropout: config.bert.hidden_dropout_prob,
        })
    }

    /// Hidden states `[windows, tokens, hidden]`; `rng` turns dropout on.
    pub fn encode(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        rng: Option<&mut SplitMix64>,
    ) -> Result<Tensor> {
        self.bert.forward(input_ids, attention_mask, rng)
    }

    /// Tag logits `[windows, tokens, tags]`.
    pub fn entity_logits(&self, hidden: &Tensor, rng: Option<&mut SplitMix64>) -> Result<Tensor> {
        self.entity_classifier
            .forward(&dropout(hidden, self.dropout, rng)?)
    }

    /// Assertion logits `[spans, classes]`. Row `s` of `span_pool`
    /// (`[spans, windows * tokens]`) averages the pieces of span `s`.
    pub fn assertion_logits(&self, hidden: &Tensor, span_pool: &Tensor) -> Result<Tensor> {
        let flat = hidden.flatten_to(1)?;
        self.assertion_classifier.forward(&span_pool.matmul(&flat)?)
    }

    /// Sum of the hidden states of the real tokens of each window
    /// (`[windows, hidden]`); divide by the count of real tokens for the mean.
    pub fn masked_sum(hidden: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let mask = attention_mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
        hidden.broadcast_mul(&mask)?.sum(1)
    }

    /// Findings logits `[documents, concepts]` from the pooled text
    /// (`[documents, hidden]`) and the rule evidence (`[documents, rule_features]`).
    pub fn findings_logits(
        &self,
        pooled: &Tensor,
        evidence: &Tensor,
        rng: Option<&mut SplitMix64>,
    ) -> Result<Tensor> {
        let pooled = dropout(pooled, self.dropout, rng)?;
        self.findings_classifier
            .forward(&Tensor::cat(&[&pooled, evidence], 1)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_decision_codes_by_its_voters_with_the_voter_s_probability() {
        let t = 0.5;
        let cases = [
            (Decision::Model, 0.7, None, Some(Decided::Model(0.7))),
            (Decision::Model, 0.3, Some(0.9), None),
            (Decision::Rules, 0.7, None, None),
            (Decision::Rules, 0.7, Some(0.9), Some(Decided::Rules(0.9))),
            (Decision::Either, 0.3, Some(0.9), Some(Decided::Rules(0.9))),
            (Decision::Either, 0.7, Some(0.9), Some(Decided::Model(0.7))),
            (Decision::Either, 0.3, None, None),
            (Decision::Both, 0.7, None, None),
            (Decision::Both, 0.7, Some(0.9), Some(Decided::Model(0.7))),
        ];
        for (decision, model, rules, expected) in cases {
            assert_eq!(
                decision.decide(model, t, rules),
                expected,
                "{decision:?} {model} {rules:?}"
            );
        }
    }

    #[test]
    fn a_config_without_decisions_reads_and_writes_as_before() {
        let json = r#"{"bert":{"vocab_size":10,"hidden_size":4,"num_hidden_layers":1,"num_attention_heads":1,"intermediate_size":8,"max_position_embeddings":16},"entity_labels":[],"assertions":[],"concepts":["A"],"vocabulary_version":"1","rule_features":4,"max_len":16,"stride":8}"#;
        let config: ReportModelConfig = serde_json::from_str(json).unwrap();
        assert!(config.decisions.is_empty());
        assert!(!serde_json::to_string(&config)
            .unwrap()
            .contains("decisions"));
        let decided = ReportModelConfig {
            decisions: vec![Decision::Either],
            ..config
        };
        assert!(serde_json::to_string(&decided)
            .unwrap()
            .contains(r#""decisions":["either"]"#));
    }
}
