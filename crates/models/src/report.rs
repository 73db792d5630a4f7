//! A report through the report model, the same natively and in the browser.
//!
//! Words are the core tokenizer's tokens (so spans land on the same
//! boundaries as the rule labeler's); their word pieces go through the encoder
//! in overlapping windows. Each word takes its tag from the window where it
//! has the most context; an entity's assertion is read in the window that
//! holds it with the most context; the document is pooled over the real
//! tokens of all windows. Training builds its inputs with the same functions.

use crate::iob::{spans, Tag};
use crate::quantized;
use crate::report_model::{Decided, ReportModel, ReportModelConfig};
use crate::tokenizer::{context_margin, windows, BertTokenizer, TokenizerError, WordPieces};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use integrabner_core::bundle::{model_file, BundleFile, FileRole};
use integrabner_core::doc::{Doc, Span};
use integrabner_core::pipeline::InputError;
use integrabner_core::schema::{Assertion, ConceptType, Finding, FindingSource, Prediction};
use integrabner_core::RulePipeline;
use std::ops::Range;

/// The source name of the report model's entities and findings.
pub const SOURCE: &str = "text";

/// Most word pieces the report model reads (8 windows, about 8,000
/// characters: seven times the longest OpenI report). Longer text is
/// analysed by the rule labeler alone, with a note saying so, so that a
/// pasted document never ties the browser up for minutes.
pub const MAX_MODEL_PIECES: usize = 2048;

/// Assertion classes in head order.
pub const ASSERTIONS: [Assertion; 3] = Assertion::ALL;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("model: {0}")]
    Model(#[from] candle_core::Error),
    #[error("model config: {0}")]
    Config(#[from] serde_json::Error),
    #[error("the model was trained for vocabulary {model}, the rules are version {rules}")]
    VocabularyMismatch { model: String, rules: String },
    #[error(
        "the report has {pieces} word pieces; the report model reads at most {MAX_MODEL_PIECES}"
    )]
    TooLongForModel { pieces: usize },
    #[error("model config: {0:?} is not a tag of the report model (O, B-TYPE, I-TYPE)")]
    UnknownTag(String),
}

/// The entity head's tags, read from a model config's names.
pub fn report_tags(names: &[String]) -> Result<Vec<Tag<ConceptType>>, ReportError> {
    names
        .iter()
        .map(|n| Tag::parse_report(n).ok_or_else(|| ReportError::UnknownTag(n.clone())))
        .collect()
}

/// A document's word pieces cut into windows.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub pieces: WordPieces,
    /// Piece ranges, each at most `max_len - 2` long.
    pub windows: Vec<Range<usize>>,
}

impl Encoded {
    pub fn new(
        tokenizer: &BertTokenizer,
        doc: &Doc,
        max_len: usize,
        stride: usize,
    ) -> Result<Self, TokenizerError> {
        let words: Vec<&str> = doc
            .tokens
            .iter()
            .map(|t| &doc.text[t.bytes.clone()])
            .collect();
        let pieces = tokenizer.encode_words(&words)?;
        let inner = max_len - 2;
        let windows = windows(pieces.ids.len().max(1), inner, stride.min(inner))
            .into_iter()
            .map(|w| w.start..w.end.min(pieces.ids.len()))
            .collect();
        Ok(Self { pieces, windows })
    }

    /// `[CLS] pieces [SEP]` of window `w`.
    pub fn window_ids(&self, tokenizer: &BertTokenizer, w: usize) -> Vec<u32> {
        let mut ids = vec![tokenizer.cls];
        ids.extend_from_slice(&self.pieces.ids[self.windows[w].clone()]);
        ids.push(tokenizer.sep);
        ids
    }

    /// Whether piece `p` is the first of its word.
    pub fn is_first_piece(&self, p: usize) -> bool {
        p == 0 || self.pieces.word_of[p - 1] != self.pieces.word_of[p]
    }

    /// The pieces of words `words`.
    pub fn piece_range(&self, words: &Range<usize>) -> Range<usize> {
        let of = &self.pieces.word_of;
        let start = of.partition_point(|&w| w < words.start);
        let end = of.partition_point(|&w| w < words.end);
        start..end
    }

    /// The window that holds all of `pieces` with the most context on both
    /// sides, or else the one where its first piece has the most.
    pub fn best_window(&self, pieces: &Range<usize>) -> usize {
        let context = |w: &Range<usize>, p: &Range<usize>| {
            let before = p.start.saturating_sub(w.start);
            let after = w.end.saturating_sub(p.end);
            before.min(after)
        };
        let holding = self
            .windows
            .iter()
            .enumerate()
            .filter(|(_, w)| w.start <= pieces.start && pieces.end <= w.end)
            .max_by_key(|(_, w)| context(w, pieces));
        match holding {
            Some((i, _)) => i,
            None => self
                .windows
                .iter()
                .enumerate()
                .filter(|(_, w)| w.contains(&pieces.start))
                .max_by_key(|(_, w)| context(w, &(pieces.start..pieces.start + 1)))
                .map_or(0, |(i, _)| i),
        }
    }
}

/// What one pass of the rules gives the model: the rule-labelled doc
/// already holds the tokens, sentences and sections the model reads.
pub struct RuleReading {
    /// The report's words (a `Doc` without spans).
    pub words: Doc,
    /// The rule labeler's evidence for the findings head.
    pub evidence: Vec<f32>,
    /// The rule labeler's coded findings.
    pub findings: Vec<Finding>,
}

pub fn read_with_rules(rules: &RulePipeline, text: &str) -> Result<RuleReading, InputError> {
    let mut words = rules.labelled_doc(text)?;
    let evidence = rules.findings.evidence(&words, &rules.vocab);
    let findings = rules.findings.findings(&words, &rules.vocab);
    words.spans.clear();
    Ok(RuleReading {
        words,
        evidence,
        findings,
    })
}

/// Ids and attention mask `[rows, len]` of token rows padded with `pad`.
pub fn pad_rows(
    rows: &[Vec<u32>],
    pad: u32,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let len = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(rows.len() * len);
    let mut mask = Vec::with_capacity(rows.len() * len);
    for row in rows {
        for t in 0..len {
            ids.push(row.get(t).copied().unwrap_or(pad));
            mask.push(u32::from(t < row.len()));
        }
    }
    Ok((
        Tensor::from_vec(ids, (rows.len(), len), device)?,
        Tensor::from_vec(mask, (rows.len(), len), device)?,
    ))
}

/// A `[spans, rows * len]` matrix whose row `s` averages flat positions `spans[s]`.
pub fn pool_matrix(
    spans: &[Vec<usize>],
    flat_len: usize,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let mut m = vec![0f32; spans.len() * flat_len];
    for (s, positions) in spans.iter().enumerate() {
        let w = 1.0 / positions.len().max(1) as f32;
        for &p in positions {
            m[s * flat_len + p] = w;
        }
    }
    Tensor::from_vec(m, (spans.len(), flat_len), device)
}

/// The report model with its tokenizer, ready to analyse reports.
pub struct ReportTagger {
    pub model: ReportModel,
    pub tokenizer: BertTokenizer,
    pub config: ReportModelConfig,
    /// `config.entity_labels`, read once.
    tags: Vec<Tag<ConceptType>>,
    device: Device,
}

/// A report through the encoder (see `ReportTagger::encode_report`).
struct Encoding {
    doc: Doc,
    rule_evidence: Vec<f32>,
    rule_findings: Vec<Finding>,
    encoded: Encoded,
    mask: Tensor,
    hidden: Tensor,
}

/// What the model made of one report.
pub struct ReportAnalysis {
    /// The report's tokens with the model's entities as spans.
    pub doc: Doc,
    /// Calibrated logit (`logit / temperature`) of each concept of
    /// `config.concepts`: what fusion reads.
    pub logits: Vec<f32>,
    /// Calibrated probability of each concept of `config.concepts`.
    pub probabilities: Vec<f32>,
    /// The rule labeler's probability of each concept of `config.concepts`
    /// it coded.
    pub rule_probabilities: Vec<Option<f32>>,
}

impl ReportTagger {
    /// Loads a shipped bundle's files: `config.json`, `model.gguf` (or f32
    /// tensors from a training run) and `tokenizer.json`.
    pub fn from_bytes(
        config_json: &[u8],
        weights_gguf: &[u8],
        tokenizer_json: &[u8],
    ) -> Result<Self, ReportError> {
        let device = Device::Cpu;
        let (tensors, _) = quantized::from_gguf(weights_gguf, &device)?;
        let config: ReportModelConfig = serde_json::from_slice(config_json)?;
        Self::from_tensors(
            config,
            tensors,
            BertTokenizer::from_tokenizer_json(tokenizer_json)?,
        )
    }

    pub fn from_tensors(
        config: ReportModelConfig,
        tensors: std::collections::HashMap<String, Tensor>,
        tokenizer: BertTokenizer,
    ) -> Result<Self, ReportError> {
        let device = Device::Cpu;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        Ok(Self {
            model: ReportModel::load(vb, &config)?,
            tags: report_tags(&config.entity_labels)?,
            tokenizer,
            config,
            device,
        })
    }

    /// The report model of a verified bundle (files under `text/`), or `None`
    /// when the bundle has none.
    pub fn from_bundle(files: &[(&BundleFile, &[u8])]) -> Result<Option<Self>, ReportError> {
        let find = |role: FileRole| model_file(files, "text", role);
        match (
            find(FileRole::ModelConfig),
            find(FileRole::Weights),
            find(FileRole::Tokenizer),
        ) {
            (Some(config), Some(weights), Some(tokenizer)) => {
                Ok(Some(Self::from_bytes(config, weights, tokenizer)?))
            }
            _ => Ok(None),
        }
    }

    /// Refuses rules of another vocabulary version than the heads know.
    pub fn check_rules(&self, rules: &RulePipeline) -> Result<(), ReportError> {
        if rules.vocab.version != self.config.vocabulary_version {
            return Err(ReportError::VocabularyMismatch {
                model: self.config.vocabulary_version.clone(),
                rules: rules.vocab.version.clone(),
            });
        }
        Ok(())
    }

    /// The report's words, rule evidence, pieces in windows and the
    /// encoder's hidden states: what every head reads.
    fn encode_report(&self, rules: &RulePipeline, text: &str) -> Result<Encoding, ReportError> {
        let RuleReading {
            words: doc,
            evidence: rule_evidence,
            findings: rule_findings,
        } = read_with_rules(rules, text)?;
        let encoded = Encoded::new(
            &self.tokenizer,
            &doc,
            self.config.max_len,
            self.config.stride,
        )?;
        if encoded.pieces.ids.len() > MAX_MODEL_PIECES {
            return Err(ReportError::TooLongForModel {
                pieces: encoded.pieces.ids.len(),
            });
        }
        let rows: Vec<Vec<u32>> = (0..encoded.windows.len())
            .map(|w| encoded.window_ids(&self.tokenizer, w))
            .collect();
        let (ids, mask) = pad_rows(&rows, self.tokenizer.pad, &self.device)?;
        let hidden = self.model.encode(&ids, &mask, None)?;
        Ok(Encoding {
            doc,
            rule_evidence,
            rule_findings,
            encoded,
            mask,
            hidden,
        })
    }

    /// Calibrated findings logits and their probabilities: the mean over
    /// every real token of every window, with `evidence` (the rules' or
    /// zeros) beside it.
    fn findings_outputs(
        &self,
        hidden: &Tensor,
        mask: &Tensor,
        evidence: Vec<f32>,
    ) -> Result<(Vec<f32>, Vec<f32>), ReportError> {
        let count = mask.to_dtype(DType::F32)?.sum_all()?;
        let pooled = ReportModel::masked_sum(hidden, mask)?
            .sum_keepdim(0)?
            .broadcast_div(&count)?;
        let evidence = Tensor::from_vec(evidence, (1, self.config.rule_features), &self.device)?;
        let logits = self.model.findings_logits(&pooled, &evidence, None)?;
        let calibrated = (logits / f64::from(self.config.temperature))?;
        Ok((
            calibrated.flatten_all()?.to_vec1()?,
            candle_nn::ops::sigmoid(&calibrated)?
                .flatten_all()?
                .to_vec1()?,
        ))
    }

    /// The findings probabilities with the rule evidence and on text alone
    /// (as `analyse` with and without `use_rules`), from one encoder pass.
    pub fn findings_with_and_without_rules(
        &self,
        rules: &RulePipeline,
        text: &str,
    ) -> Result<(Vec<f32>, Vec<f32>), ReportError> {
        let encoding = self.encode_report(rules, text)?;
        let zeros = vec![0.0; self.config.rule_features];
        Ok((
            self.findings_outputs(&encoding.hidden, &encoding.mask, encoding.rule_evidence)?
                .1,
            self.findings_outputs(&encoding.hidden, &encoding.mask, zeros)?
                .1,
        ))
    }

    /// Runs the model over `text`. With `use_rules`, the findings head reads
    /// the rule labeler's evidence; without, zeros (text only).
    pub fn analyse(
        &self,
        rules: &RulePipeline,
        text: &str,
        use_rules: bool,
    ) -> Result<ReportAnalysis, ReportError> {
        let Encoding {
            mut doc,
            rule_evidence,
            rule_findings,
            encoded,
            mask,
            hidden,
        } = self.encode_report(rules, text)?;
        let len = hidden.dim(1)?;

        // Tags: each word from the window where its first piece has the most context.
        let probs: Vec<Vec<Vec<f32>>> =
            candle_nn::ops::softmax(&self.model.entity_logits(&hidden, None)?, D::Minus1)?
                .to_vec3()?;
        let n_words = doc.tokens.len();
        let mut best: Vec<(usize, usize, f32)> = vec![(0, 0, 0.0); n_words];
        for (w, range) in encoded.windows.iter().enumerate() {
            let n = range.len() + 2;
            for p in range.clone() {
                if !encoded.is_first_piece(p) {
                    continue;
                }
                let t = p - range.start + 1;
                let margin = context_margin(t, n);
                let word = encoded.pieces.word_of[p];
                if margin > best[word].0 {
                    let (tag, prob) = argmax(&probs[w][t]);
                    best[word] = (margin, tag, prob);
                }
            }
        }
        let tags: Vec<Tag<ConceptType>> = best.iter().map(|&(_, tag, _)| self.tags[tag]).collect();
        let mut found: Vec<(Range<usize>, ConceptType, f32)> = Vec::new();
        for (start, end, label) in spans(&tags) {
            let score = best[start..end].iter().map(|b| b.2).fold(1.0, f32::min);
            // Two touching spans of one type that together are a vocabulary
            // phrase are one entity the tagger split ("lung" + "nodules").
            if let Some(last) = found.last_mut() {
                if last.1 == label
                    && last.0.end == start
                    && rules.labeler.is_phrase(&doc.tokens[last.0.start..end])
                {
                    last.0.end = end;
                    last.2 = last.2.min(score);
                    continue;
                }
            }
            found.push((start..end, label, score));
        }

        // Assertions: each entity pooled in its best window.
        if !found.is_empty() {
            let pools: Vec<Vec<usize>> = found
                .iter()
                .map(|(words, _, _)| {
                    let pieces = encoded.piece_range(words);
                    let w = encoded.best_window(&pieces);
                    let window = &encoded.windows[w];
                    (pieces.start.max(window.start)..pieces.end.min(window.end))
                        .map(|p| w * len + p - window.start + 1)
                        .collect()
                })
                .collect();
            let pool = pool_matrix(&pools, encoded.windows.len() * len, &self.device)?;
            let assertion: Vec<Vec<f32>> =
                candle_nn::ops::softmax(&self.model.assertion_logits(&hidden, &pool)?, D::Minus1)?
                    .to_vec2()?;
            for ((words, _, score), a) in found.into_iter().zip(assertion) {
                let Some(concept) = rules.labeler.link(&doc.tokens[words.clone()]) else {
                    continue;
                };
                // The label is the linked concept's type, as in every other
                // source: the tagger's own type decided where the span is,
                // but a DISEASE entity coded `Pleura` would contradict itself.
                let label = rules.vocab.concept(concept).concept_type;
                let chars = doc.char_range(&words);
                let (class, _) = argmax(&a);
                doc.spans.push(Span {
                    start: chars.start,
                    end: chars.end,
                    concept: Some(concept),
                    section: doc.section_of(words.start),
                    tokens: words,
                    label,
                    assertion: ASSERTIONS[class],
                    score,
                    source: SOURCE.to_string(),
                    abnormal_qualifiers: Vec::new(),
                    cues: Vec::new(),
                });
            }
        }

        // The model's mentions get their qualifier words too.
        rules.qualifiers.annotate(&mut doc);
        let evidence = if use_rules {
            rule_evidence
        } else {
            vec![0.0; self.config.rule_features]
        };
        let (logits, probabilities) = self.findings_outputs(&hidden, &mask, evidence)?;
        let rule_probabilities = self
            .config
            .concepts
            .iter()
            .map(|c| {
                rule_findings
                    .iter()
                    .find(|f| &f.concept == c)
                    .map(|f| f.probability)
            })
            .collect();
        Ok(ReportAnalysis {
            doc,
            logits,
            probabilities,
            rule_probabilities,
        })
    }

    /// The concepts coded by their decision (`config.decisions`; the model
    /// alone when there are none): the model's at its threshold, the rule
    /// labeler's, or both.
    pub fn findings(&self, rules: &RulePipeline, analysis: &ReportAnalysis) -> Vec<Finding> {
        self.config
            .concepts
            .iter()
            .zip(
                analysis
                    .probabilities
                    .iter()
                    .zip(&analysis.rule_probabilities),
            )
            .enumerate()
            .filter_map(|(i, (heading, (&model, &by_rules)))| {
                let decided =
                    self.config
                        .decision(i)
                        .decide(model, self.config.threshold, by_rules)?;
                let (probability, source) = match decided {
                    Decided::Model(p) => (p, FindingSource::Text),
                    Decided::Rules(p) => (p, FindingSource::Dictionary),
                };
                let id = rules.vocab.find(heading)?;
                Some(rules.vocab.concept(id).finding(probability, source))
            })
            .collect()
    }

    /// The output object of a report alone: the model's entities, its
    /// findings and every concept's probability.
    pub fn prediction(
        &self,
        rules: &RulePipeline,
        id: &str,
        analysis: &ReportAnalysis,
    ) -> Prediction {
        let mut findings = self.findings(rules, analysis);
        rules.qualify(&analysis.doc, &mut findings);
        Prediction {
            id: id.to_string(),
            findings,
            entities: rules.entities(&analysis.doc),
            scores: self
                .config
                .concepts
                .iter()
                .cloned()
                .zip(analysis.probabilities.iter().copied())
                .collect(),
            ..Default::default()
        }
    }
}

/// Index and value of the largest element (the first on ties).
pub fn argmax(xs: &[f32]) -> (usize, f32) {
    xs.iter().enumerate().fold(
        (0, f32::MIN),
        |acc, (i, &p)| if p > acc.1 { (i, p) } else { acc },
    )
}
