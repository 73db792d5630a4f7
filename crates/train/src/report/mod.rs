//! Training the report model: tags and assertions from the silver spans of
//! the hybrid autolabeler, document findings from OpenI's manual coding.
//!
//! One item per report: its first window (reports longer than a window are
//! rare in OpenI; their later pieces train nothing). The loss adds the tag
//! cross-entropy, the assertion cross-entropy and `Recipe::findings_weight` times the
//! binary cross-entropy summed over concepts. The rule evidence is dropped (zeros) for a fraction of the
//! reports so that the findings head also works on text alone.
//!
//! With a teacher (a trained report model, usually a deeper one), the
//! findings targets are soft: `teacher_share` of the teacher's probability
//! plus the rest of the manual coding, the teacher read with or without the
//! rule evidence as the student is. A shallow student learns the coding from
//! text poorly on 0/1 targets alone; the teacher's probabilities say how
//! likely every concept is, not only which were coded.

pub mod data;
pub mod decide;
pub mod eval;
pub mod export;

use crate::adamw::AdamW;
use crate::checkpoint;
use crate::qualifier_eval::{Coding, QualifierScores};
pub use crate::trainer::Outcome;
use crate::trainer::{self, Task, TrainConfig};
use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use integrabner_core::doc::Doc;
use integrabner_core::findings::EVIDENCE_PER_CONCEPT;
use integrabner_core::metrics::MultiLabelEval;
use integrabner_core::rng::SplitMix64;
use integrabner_core::{ConceptType, Entity, RulePipeline};
use integrabner_models::iob::{SpanCounts, Tag};
use integrabner_models::report::{
    pad_rows, pool_matrix, read_with_rules, report_tags, Encoded, ReportTagger, RuleReading,
    ASSERTIONS,
};
use integrabner_models::report_model::{ReportModel, ReportModelConfig};
use integrabner_models::tokenizer::BertTokenizer;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// Weight of the findings loss (summed over concepts) against the tag and
/// assertion losses. At 0.5 the findings gradients took most of the clipped
/// gradient norm and, after one epoch, multi-word entities were still split
/// into one-word spans (validation span F1 0.70); 0.1 leaves room for the tags.
pub const FINDINGS_WEIGHT: f64 = 0.1;

/// What the report model starts from and what its loss weighs.
#[derive(Clone)]
pub struct Recipe<'a> {
    /// A BERT checkpoint directory.
    pub base: &'a Path,
    /// Keep only the base's bottom encoder layers (all when `None`).
    pub layers: Option<usize>,
    /// Keep only this many feed-forward neurons per layer (all when `None`).
    pub feed_forward_width: Option<usize>,
    /// Weight of the findings loss (see the module docs).
    pub findings_weight: f64,
    /// Soft findings targets from this report model (see the module docs).
    pub teacher: Option<Teacher<'a>>,
}

/// A trained report model whose findings probabilities the student learns.
#[derive(Clone, Copy)]
pub struct Teacher<'a> {
    pub model: &'a ReportTagger,
    /// Weight of the teacher's probability in a target, in [0, 1].
    pub share: f32,
}

impl Teacher<'_> {
    /// The soft targets for `report`: (with the rule evidence, text alone).
    fn targets(
        &self,
        rules: &RulePipeline,
        report: &LabelledReport,
        gold: &[f32],
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let (with_rules, text_only) = self
            .model
            .findings_with_and_without_rules(rules, &report.text)?;
        let mix = |taught: Vec<f32>| -> Vec<f32> {
            taught
                .iter()
                .zip(gold)
                .map(|(t, g)| self.share * t + (1.0 - self.share) * g)
                .collect()
        };
        Ok((mix(with_rules), mix(text_only)))
    }
}
/// Fraction of training reports whose findings head sees no rule evidence.
const EVIDENCE_DROPOUT: f32 = 0.3;
/// Learning-rate factor of the freshly initialized heads.
const HEAD_LR_SCALE: f64 = 20.0;
/// Window of the report model: nearly every OpenI report fits in one.
pub const MAX_LEN: usize = 256;
pub const STRIDE: usize = 192;

/// A report with its silver entities and the vocabulary headings of its manual coding.
#[derive(Debug, Clone)]
pub struct LabelledReport {
    pub id: String,
    pub text: String,
    pub silver: Vec<Entity>,
    pub gold: BTreeSet<String>,
    /// The coders' codings with their qualifiers.
    pub codings: Vec<Coding>,
}

pub struct Item {
    ids: Vec<u32>,
    /// (position, tag) of each word's first piece.
    tags: Vec<(usize, u32)>,
    /// Positions of each silver entity's pieces, and its assertion class.
    entities: Vec<(Vec<usize>, u32)>,
    /// Findings targets: with the rule evidence, and on text alone (the
    /// manual coding twice unless a teacher softened them).
    findings: Vec<f32>,
    findings_text_only: Vec<f32>,
    evidence: Vec<f32>,
}

/// BIO tag id of every word of `doc` from entities given by char offsets.
pub fn word_tags(doc: &Doc, entities: &[Entity], tags: &[Tag<ConceptType>]) -> Vec<u32> {
    let index: HashMap<Tag<ConceptType>, u32> = tags
        .iter()
        .enumerate()
        .map(|(i, &t)| (t, i as u32))
        .collect();
    let mut out = vec![0; doc.tokens.len()];
    for e in entities {
        let words: Vec<usize> = (0..doc.tokens.len())
            .filter(|&w| doc.tokens[w].chars.start >= e.start && doc.tokens[w].chars.end <= e.end)
            .collect();
        for (k, &w) in words.iter().enumerate() {
            let tag = if k == 0 {
                Tag::Begin(e.label)
            } else {
                Tag::Inside(e.label)
            };
            out[w] = index[&tag];
        }
    }
    out
}

/// The word range of an entity given by char offsets.
fn entity_words(doc: &Doc, e: &Entity) -> std::ops::Range<usize> {
    let start = doc.tokens.partition_point(|t| t.chars.start < e.start);
    let end = doc.tokens.partition_point(|t| t.chars.end <= e.end);
    start..end.max(start)
}

fn make_item(
    tokenizer: &BertTokenizer,
    rules: &RulePipeline,
    config: &ReportModelConfig,
    teacher: Option<Teacher>,
    report: &LabelledReport,
) -> Result<Item> {
    let RuleReading {
        words: doc,
        evidence,
        ..
    } = read_with_rules(rules, &report.text)?;
    let encoded = Encoded::new(tokenizer, &doc, config.max_len, config.stride)?;
    let window = encoded.windows[0].clone();
    let tags = word_tags(&doc, &report.silver, &report_tags(&config.entity_labels)?);
    let in_window = |p: usize| window.contains(&p);
    let tag_targets = window
        .clone()
        .filter(|&p| encoded.is_first_piece(p))
        .map(|p| (p - window.start + 1, tags[encoded.pieces.word_of[p]]))
        .collect();
    let entities = report
        .silver
        .iter()
        .filter_map(|e| {
            let pieces = encoded.piece_range(&entity_words(&doc, e));
            let positions: Vec<usize> = pieces
                .filter(|&p| in_window(p))
                .map(|p| p - window.start + 1)
                .collect();
            let class = ASSERTIONS.iter().position(|&a| a == e.assertion)? as u32;
            (!positions.is_empty()).then_some((positions, class))
        })
        .collect();
    let gold: Vec<f32> = config
        .concepts
        .iter()
        .map(|c| f32::from(u8::from(report.gold.contains(c))))
        .collect();
    let (findings, findings_text_only) = match teacher {
        Some(teacher) => teacher.targets(rules, report, &gold)?,
        None => (gold.clone(), gold),
    };
    Ok(Item {
        ids: encoded.window_ids(tokenizer, 0),
        tags: tag_targets,
        entities,
        findings,
        findings_text_only,
        evidence,
    })
}

struct ReportTask<'a> {
    model: ReportModel,
    /// The same weights outside the autograd graph, for the development score.
    evaluator: ReportTagger,
    graph_tensors: HashMap<String, Tensor>,
    items: Vec<Item>,
    dev: &'a [LabelledReport],
    rules: &'a RulePipeline,
    base: &'a Path,
    findings_weight: f64,
}

impl Task for ReportTask<'_> {
    type Item = Item;

    fn items(&self) -> &[Item] {
        &self.items
    }

    fn length(&self, item: &Item) -> usize {
        item.ids.len()
    }

    fn loss(&self, batch: &[&Item], rng: &mut SplitMix64) -> Result<Tensor> {
        let device = Device::Cpu;
        let rows: Vec<Vec<u32>> = batch.iter().map(|i| i.ids.clone()).collect();
        let (ids, mask) = pad_rows(&rows, self.evaluator.tokenizer.pad, &device)?;
        let len = ids.dim(1)?;
        let hidden = self.model.encode(&ids, &mask, Some(rng))?;

        let mut positions = Vec::new();
        let mut targets = Vec::new();
        let mut pools = Vec::new();
        let mut classes = Vec::new();
        for (b, item) in batch.iter().enumerate() {
            for &(t, tag) in &item.tags {
                positions.push((b * len + t) as u32);
                targets.push(tag);
            }
            for (span, class) in &item.entities {
                pools.push(span.iter().map(|t| b * len + t).collect::<Vec<_>>());
                classes.push(*class);
            }
        }
        let logits = self.model.entity_logits(&hidden, Some(rng))?;
        let flat = logits.flatten_to(1)?;
        let picked = flat.index_select(&Tensor::new(positions.as_slice(), &device)?, 0)?;
        let mut loss =
            candle_nn::loss::cross_entropy(&picked, &Tensor::new(targets.as_slice(), &device)?)?;
        if !pools.is_empty() {
            let pool = pool_matrix(&pools, batch.len() * len, &device)?;
            let a = self.model.assertion_logits(&hidden, &pool)?;
            loss = (loss
                + candle_nn::loss::cross_entropy(&a, &Tensor::new(classes.as_slice(), &device)?)?)?;
        }

        let counts = mask.to_dtype(DType::F32)?.sum_keepdim(1)?;
        let pooled = ReportModel::masked_sum(&hidden, &mask)?.broadcast_div(&counts)?;
        let width = self.evaluator.config.rule_features;
        let mut evidence = Vec::with_capacity(batch.len() * width);
        let mut findings = Vec::new();
        for item in batch {
            if rng.next_f32() < EVIDENCE_DROPOUT {
                evidence.extend(std::iter::repeat_n(0.0, width));
                findings.extend_from_slice(&item.findings_text_only);
            } else {
                evidence.extend_from_slice(&item.evidence);
                findings.extend_from_slice(&item.findings);
            }
        }
        let evidence = Tensor::from_vec(evidence, (batch.len(), width), &device)?;
        let f = self.model.findings_logits(&pooled, &evidence, Some(rng))?;
        let target = Tensor::from_vec(findings, f.shape(), &device)?;
        let concepts = f.dim(1)? as f64;
        let bce = candle_nn::loss::binary_cross_entropy_with_logit(&f, &target)?;
        Ok((loss + (bce * (concepts * self.findings_weight))?)?)
    }

    fn score_name(&self) -> &str {
        "dev mean of span F1, assertion accuracy and findings micro-F1"
    }

    fn dev_score(&self) -> Result<f64> {
        let (scores, _) = evaluate(&self.evaluator, self.rules, self.dev, true)?;
        let assertion = scores.assertion_correct as f64 / scores.spans.true_positives.max(1) as f64;
        Ok((scores.spans.f1() + assertion + scores.findings.micro().f1) / 3.0)
    }

    fn write_model(&self, dir: &Path) -> Result<()> {
        trainer::write_model_dir(dir, self.base, &self.evaluator.config, &self.graph_tensors)
    }
}

/// Span, assertion and findings scores of a model on labelled reports.
pub struct Scores {
    /// Strict spans (boundaries and label) against the silver spans.
    pub spans: SpanCounts,
    /// Of the spans found exactly, how many carry the silver assertion.
    pub assertion_correct: usize,
    pub findings: MultiLabelEval,
    pub qualifiers: QualifierScores,
}

/// What the model said of one report: its prediction and the calibrated
/// probability of every concept of the model's config.
pub struct ReportOutput {
    pub prediction: integrabner_core::Prediction,
    pub probabilities: Vec<f32>,
    /// The rule labeler's probability of each concept it coded.
    pub rule_probabilities: Vec<Option<f32>>,
}

/// Scores `tagger` on `reports`; `use_rules` feeds the findings head the
/// rule evidence. Returns the scores and each report's output.
pub fn evaluate(
    tagger: &ReportTagger,
    rules: &RulePipeline,
    reports: &[LabelledReport],
    use_rules: bool,
) -> Result<(Scores, Vec<ReportOutput>)> {
    let mut scores = Scores {
        spans: SpanCounts::default(),
        assertion_correct: 0,
        findings: MultiLabelEval::default(),
        qualifiers: QualifierScores::default(),
    };
    let mut outputs = Vec::with_capacity(reports.len());
    for r in reports {
        let analysis = tagger.analyse(rules, &r.text, use_rules)?;
        let p = tagger.prediction(rules, &r.id, &analysis);
        let key = |e: &Entity| (e.start, e.end, e.label);
        let gold: HashMap<_, _> = r.silver.iter().map(|e| (key(e), e.assertion)).collect();
        let mut tp = 0;
        for e in &p.entities {
            if let Some(&a) = gold.get(&key(e)) {
                tp += 1;
                scores.assertion_correct += usize::from(a == e.assertion);
            }
        }
        scores.spans.true_positives += tp;
        scores.spans.false_positives += p.entities.len() - tp;
        scores.spans.false_negatives += gold.len() - tp;
        let predicted: BTreeSet<String> = p.findings.iter().map(|f| f.concept.clone()).collect();
        scores.findings.add(&r.gold, &predicted);
        scores.qualifiers.add(&r.codings, &p.findings);
        outputs.push(ReportOutput {
            prediction: p,
            probabilities: analysis.probabilities,
            rule_probabilities: analysis.rule_probabilities,
        });
    }
    Ok((scores, outputs))
}

/// The configuration of a new report model on `base`'s encoder.
pub fn model_config(
    base: &integrabner_models::BertConfig,
    rules: &RulePipeline,
) -> ReportModelConfig {
    ReportModelConfig {
        bert: base.clone(),
        entity_labels: Tag::report_head().iter().map(|t| t.name()).collect(),
        assertions: ASSERTIONS.iter().map(|a| a.as_str().to_string()).collect(),
        concepts: rules
            .vocab
            .concepts
            .iter()
            .map(|c| c.heading.clone())
            .collect(),
        vocabulary_version: rules.vocab.version.clone(),
        rule_features: rules.vocab.concepts.len() * EVIDENCE_PER_CONCEPT,
        max_len: MAX_LEN.min(base.max_position_embeddings),
        stride: STRIDE,
        temperature: 1.0,
        threshold: 0.5,
        decisions: Vec::new(),
    }
}

/// Trains from `recipe.base` into `out` (see [`trainer::run`] for the files
/// and resuming).
pub fn train(
    recipe: Recipe,
    rules: &RulePipeline,
    train: &[LabelledReport],
    dev: &[LabelledReport],
    out: &Path,
    config: TrainConfig,
    keep_going: impl FnMut(usize) -> bool,
) -> Result<Outcome> {
    let device = Device::Cpu;
    let base = recipe.base;
    let mut ckpt = checkpoint::load(base, &device)?;
    if let Some(layers) = recipe.layers {
        ckpt.keep_bottom_layers(layers)?;
    }
    if let Some(width) = recipe.feed_forward_width {
        ckpt.narrow_feed_forward(width)?;
    }
    let model_config = model_config(&ckpt.config, rules);
    let hidden = model_config.bert.hidden_size;
    let mut tensors = ckpt.tensors;
    let mut init = SplitMix64::new(config.seed);
    // A trained report model as the base keeps its heads (a warm start);
    // a plain BERT checkpoint gets new ones.
    let has = |tensors: &HashMap<String, Tensor>, name: &str, shape: [usize; 2]| {
        tensors.get(name).is_some_and(|t| t.dims() == shape)
    };
    let labels = model_config.entity_labels.len();
    if !has(&tensors, "entity_classifier.weight", [labels, hidden]) {
        trainer::init_linear(&mut tensors, "entity_classifier", labels, hidden, &mut init)?;
    }
    let assertions = model_config.assertions.len();
    if !has(
        &tensors,
        "assertion_classifier.weight",
        [assertions, hidden],
    ) {
        trainer::init_linear(
            &mut tensors,
            "assertion_classifier",
            assertions,
            hidden,
            &mut init,
        )?;
    }
    let findings = [
        model_config.concepts.len(),
        hidden + model_config.rule_features,
    ];
    if !has(&tensors, "findings_classifier.weight", findings) {
        init_findings_head(&mut tensors, &model_config, &mut init)?;
    }
    let (graph_tensors, vars) = trainer::bert_vars(tensors, out, &config)?;
    let model = ReportModel::load(
        VarBuilder::from_tensors(graph_tensors.clone(), DType::F32, &device),
        &model_config,
    )?;
    let mut optimizer = AdamW::new(vars, config.weight_decay)?;
    optimizer.scale_learning_rates(|n| {
        if n.starts_with("bert.") {
            1.0
        } else {
            HEAD_LR_SCALE
        }
    });
    let evaluator = ReportTagger::from_tensors(
        model_config.clone(),
        trainer::detached(&graph_tensors),
        ckpt.tokenizer,
    )?;
    if let Some(teacher) = recipe.teacher {
        teacher.model.check_rules(rules)?;
        anyhow::ensure!(
            teacher.model.config.concepts == model_config.concepts,
            "the teacher codes other concepts than the student"
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&teacher.share),
            "the teacher's share must be between 0 and 1"
        );
        eprintln!("reading the teacher's findings for {} reports", train.len());
    }
    let items = train
        .iter()
        .map(|r| {
            make_item(
                &evaluator.tokenizer,
                rules,
                &model_config,
                recipe.teacher,
                r,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let task = ReportTask {
        model,
        evaluator,
        graph_tensors,
        items,
        dev,
        rules,
        base,
        findings_weight: recipe.findings_weight,
    };
    let mut signature = serde_json::json!({
        "concepts": model_config.concepts,
        "reports": train.len(),
    });
    if let Some(teacher) = recipe.teacher {
        signature["teacher_share"] = teacher.share.into();
    }
    trainer::run(&task, &mut optimizer, out, &config, signature, keep_going)
}

/// The findings head starts as the rules: a concept the rules code gets a
/// high logit (sigmoid 0.92), every other a low one (0.01, about the rate at
/// which a concept is coded in a report); training learns the departures.
fn init_findings_head(
    tensors: &mut HashMap<String, Tensor>,
    config: &ReportModelConfig,
    rng: &mut SplitMix64,
) -> Result<()> {
    let hidden = config.bert.hidden_size;
    let width = hidden + config.rule_features;
    let n = config.concepts.len();
    let mut w: Vec<f32> = (0..n * width).map(|_| rng.next_normal() * 0.02).collect();
    for c in 0..n {
        for f in 0..config.rule_features {
            w[c * width + hidden + f] = 0.0;
        }
        w[c * width + hidden + c * EVIDENCE_PER_CONCEPT] = 7.0;
    }
    tensors.insert(
        "findings_classifier.weight".into(),
        Tensor::from_vec(w, (n, width), &Device::Cpu)?,
    );
    tensors.insert(
        "findings_classifier.bias".into(),
        Tensor::full(-4.6f32, n, &Device::Cpu)?,
    );
    Ok(())
}

/// Loads a report model directory: a shipped bundle (`model.gguf`) or a
/// training output (`model.safetensors`), with `config.json` and the tokenizer.
pub fn load_tagger(dir: &Path) -> Result<ReportTagger> {
    use anyhow::Context;
    let read = |name: &str| {
        std::fs::read(dir.join(name))
            .with_context(|| format!("cannot read {}/{name}", dir.display()))
    };
    let gguf = dir.join("model.gguf");
    if gguf.exists() {
        return Ok(ReportTagger::from_bytes(
            &read("config.json")?,
            &read("model.gguf")?,
            &read("tokenizer.json")?,
        )?);
    }
    let config: ReportModelConfig = serde_json::from_slice(&read("config.json")?)
        .context("config.json is not a report-model config")?;
    Ok(ReportTagger::from_tensors(
        config,
        checkpoint::load_tensors(dir, &Device::Cpu)?,
        checkpoint::load_tokenizer(dir)?,
    )?)
}
