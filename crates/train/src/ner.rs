//! Token-classification (NER) training and evaluation on IOB corpora.
//!
//! Words are split into word pieces; a word's label sits on its first piece
//! and the other pieces are ignored by the loss. Sentences longer than a
//! window are cut into overlapping windows; at prediction time each word takes
//! its label probabilities from the window where it has the most context on
//! both sides, and each sentence is decoded as one valid IOB sequence.

use crate::adamw::AdamW;
use crate::checkpoint;
use crate::progress;
use crate::trainer::{self, Task};
pub use crate::trainer::{EpochRecord, Outcome, TrainConfig};
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use indicatif::ProgressBar;
use integrabner_core::rng::SplitMix64;
use integrabner_models::iob::{decode_valid_iob, parse_iob, Sentence, SpanCounts};
use integrabner_models::token_classifier::{TokenClassifier, TokenClassifierConfig};
use integrabner_models::tokenizer::{context_margin, windows, BertTokenizer};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Loss target of a piece that carries no label.
const IGNORE: i64 = -1;

/// One window of one sentence, ready for the model.
#[derive(Debug, Clone)]
struct Window {
    ids: Vec<u32>,
    targets: Vec<i64>,
    /// For each position, the word whose first piece sits there.
    first_piece_of: Vec<Option<usize>>,
    sentence: usize,
}

/// Label set of a corpus: `O` first, then `B-`/`I-` per type, sorted.
pub fn label_set(sentences: &[Sentence]) -> Vec<String> {
    let mut types: Vec<&str> = sentences
        .iter()
        .flat_map(|s| s.tags.iter())
        .filter_map(|t| t.split_once('-').map(|(_, ty)| ty))
        .collect();
    types.sort_unstable();
    types.dedup();
    let mut labels = vec!["O".to_string()];
    for ty in types {
        labels.push(format!("B-{ty}"));
        labels.push(format!("I-{ty}"));
    }
    labels
}

fn make_windows(
    tokenizer: &BertTokenizer,
    sentences: &[Sentence],
    labels: &[String],
    max_len: usize,
    stride: usize,
) -> Result<Vec<Window>> {
    let index: HashMap<&str, i64> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i as i64))
        .collect();
    let inner = max_len - 2;
    let mut out = Vec::new();
    for (s, sentence) in sentences.iter().enumerate() {
        let words: Vec<&str> = sentence.words.iter().map(String::as_str).collect();
        let pieces = tokenizer.encode_words(&words)?;
        for range in windows(pieces.ids.len(), inner, stride.min(inner)) {
            let mut w = Window {
                ids: vec![tokenizer.cls],
                targets: vec![IGNORE],
                first_piece_of: vec![None],
                sentence: s,
            };
            for p in range {
                let word = pieces.word_of[p];
                let first = p == 0 || pieces.word_of[p - 1] != word;
                w.ids.push(pieces.ids[p]);
                w.first_piece_of.push(first.then_some(word));
                // Untagged text (prediction) trains nothing: target `O`.
                w.targets.push(if first {
                    sentence
                        .tags
                        .get(word)
                        .and_then(|t| index.get(t.as_str()))
                        .copied()
                        .unwrap_or(0)
                } else {
                    IGNORE
                });
            }
            w.ids.push(tokenizer.sep);
            w.targets.push(IGNORE);
            w.first_piece_of.push(None);
            out.push(w);
        }
    }
    Ok(out)
}

struct Batch {
    ids: Tensor,
    mask: Tensor,
    /// Flat positions (b * len + t) that carry a label, and those labels.
    positions: Tensor,
    targets: Tensor,
}

fn batch(windows: &[&Window], pad: u32, device: &Device) -> Result<Batch> {
    let len = windows.iter().map(|w| w.ids.len()).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(windows.len() * len);
    let mut mask = Vec::with_capacity(windows.len() * len);
    let mut positions = Vec::new();
    let mut targets = Vec::new();
    for (b, w) in windows.iter().enumerate() {
        for t in 0..len {
            ids.push(w.ids.get(t).copied().unwrap_or(pad));
            mask.push(u32::from(t < w.ids.len()));
            if let Some(&target) = w.targets.get(t).filter(|&&x| x != IGNORE) {
                positions.push((b * len + t) as u32);
                targets.push(target as u32);
            }
        }
    }
    let shape = (windows.len(), len);
    Ok(Batch {
        ids: Tensor::from_vec(ids, shape, device)?,
        mask: Tensor::from_vec(mask, shape, device)?,
        positions: Tensor::new(positions.as_slice(), device)?,
        targets: Tensor::new(targets.as_slice(), device)?,
    })
}

fn loss(model: &TokenClassifier, b: &Batch, rng: Option<&mut SplitMix64>) -> Result<Tensor> {
    let logits = model.forward(&b.ids, &b.mask, rng)?;
    let classes = logits.dim(D::Minus1)?;
    let flat = logits.reshape(((), classes))?;
    let picked = flat.index_select(&b.positions, 0)?;
    Ok(candle_nn::loss::cross_entropy(&picked, &b.targets)?)
}

/// A token classifier with its tokenizer and labels, ready to predict.
pub struct NerModel {
    pub model: TokenClassifier,
    pub tokenizer: BertTokenizer,
    pub config: TokenClassifierConfig,
    pub device: Device,
}

/// The `config.json` of a model written by [`train`].
pub fn load_config(dir: &Path) -> Result<TokenClassifierConfig> {
    serde_json::from_str(
        &std::fs::read_to_string(dir.join("config.json"))
            .with_context(|| format!("cannot read {}/config.json", dir.display()))?,
    )
    .context("config.json is not a token-classifier config")
}

impl NerModel {
    /// Loads a model written by [`train`] (`config.json`, `model.safetensors`,
    /// `tokenizer.json` or `vocab.txt`).
    pub fn load(dir: &Path) -> Result<Self> {
        let device = Device::Cpu;
        let tensors = checkpoint::load_tensors(dir, &device)?;
        Self::from_parts(load_config(dir)?, tensors, checkpoint::load_tokenizer(dir)?)
    }

    /// Loads a shipped model from its files' bytes (`config.json`,
    /// `model.gguf`, `tokenizer.json`), once the caller has verified them.
    pub fn from_bytes(
        config_json: &[u8],
        weights_gguf: &[u8],
        tokenizer_json: &[u8],
    ) -> Result<Self> {
        let config = serde_json::from_slice(config_json)
            .context("config.json is not a token-classifier config")?;
        let tensors = checkpoint::tensors_from_gguf(weights_gguf, &Device::Cpu)?;
        let tokenizer = BertTokenizer::from_tokenizer_json(tokenizer_json)?;
        Self::from_parts(config, tensors, tokenizer)
    }

    fn from_parts(
        config: TokenClassifierConfig,
        tensors: HashMap<String, Tensor>,
        tokenizer: BertTokenizer,
    ) -> Result<Self> {
        let device = Device::Cpu;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        Ok(Self {
            model: TokenClassifier::load(vb, &config)?,
            tokenizer,
            config,
            device,
        })
    }

    /// IOB tag and its probability for every word of every sentence.
    pub fn tag(
        &self,
        sentences: &[Sentence],
        progress: &ProgressBar,
    ) -> Result<Vec<Vec<(String, f32)>>> {
        // Windows as in training, never longer than the model's positions.
        let max_len = self
            .config
            .bert
            .max_position_embeddings
            .min(TrainConfig::default().max_len);
        let windows = make_windows(
            &self.tokenizer,
            sentences,
            &self.config.labels,
            max_len,
            max_len * 3 / 4,
        )?;
        let labels = &self.config.labels;
        // Per (sentence, word): the label probabilities from the window where
        // the word has the most context, and that context (margin). A word
        // with no word piece (nothing the vocabulary can spell) is never
        // scored and stays outside every span.
        let outside: Vec<f32> = labels
            .iter()
            .map(|l| f32::from(u8::from(l == "O")))
            .collect();
        let mut best: Vec<Vec<(usize, Vec<f32>)>> = sentences
            .iter()
            .map(|s| vec![(0, outside.clone()); s.words.len()])
            .collect();
        let mut order: Vec<&Window> = windows.iter().collect();
        order.sort_by_key(|w| w.ids.len());
        for chunk in order.chunks(32) {
            let b = batch(chunk, self.tokenizer.pad, &self.device)?;
            let logits = self.model.forward(&b.ids, &b.mask, None)?;
            let probs: Vec<Vec<Vec<f32>>> =
                candle_nn::ops::softmax(&logits, D::Minus1)?.to_vec3()?;
            for (w, mut rows) in chunk.iter().zip(probs) {
                let n = w.ids.len();
                for (t, word) in w.first_piece_of.iter().enumerate() {
                    let Some(word) = *word else { continue };
                    let margin = context_margin(t, n);
                    let slot = &mut best[w.sentence][word];
                    if margin > slot.0 {
                        *slot = (margin, std::mem::take(&mut rows[t]));
                    }
                }
            }
            progress.inc(chunk.len() as u64);
        }
        Ok(best
            .into_iter()
            .map(|words| {
                let rows: Vec<Vec<f32>> = words.into_iter().map(|(_, row)| row).collect();
                let path = decode_valid_iob(&rows, labels);
                path.iter()
                    .zip(&rows)
                    .map(|(&l, row)| (labels[l].clone(), row[l]))
                    .collect()
            })
            .collect())
    }

    pub fn evaluate(&self, sentences: &[Sentence], progress: &ProgressBar) -> Result<SpanCounts> {
        let predicted = self.tag(sentences, progress)?;
        let mut counts = SpanCounts::default();
        for (s, p) in sentences.iter().zip(&predicted) {
            let tags: Vec<&str> = p.iter().map(|(t, _)| t.as_str()).collect();
            counts.add(&s.tags, &tags);
        }
        Ok(counts)
    }
}

pub struct TrainData<'a> {
    pub train: &'a [Sentence],
    pub dev: &'a [Sentence],
}

/// Token classification over IOB windows, scored by development span F1.
struct NerTask<'a> {
    model: TokenClassifier,
    /// The same weights outside the autograd graph, for the development
    /// score: vars are updated in place, so it follows training.
    evaluator: NerModel,
    graph_tensors: HashMap<String, Tensor>,
    windows: Vec<Window>,
    dev: &'a [Sentence],
    base: &'a Path,
}

impl Task for NerTask<'_> {
    type Item = Window;

    fn items(&self) -> &[Window] {
        &self.windows
    }

    fn length(&self, w: &Window) -> usize {
        w.ids.len()
    }

    fn loss(&self, windows: &[&Window], rng: &mut SplitMix64) -> Result<Tensor> {
        let b = batch(
            windows,
            self.evaluator.tokenizer.pad,
            &self.evaluator.device,
        )?;
        loss(&self.model, &b, Some(rng))
    }

    fn score_name(&self) -> &str {
        "dev span F1"
    }

    fn dev_score(&self) -> Result<f64> {
        Ok(self
            .evaluator
            .evaluate(self.dev, &ProgressBar::hidden())?
            .f1())
    }

    fn write_model(&self, dir: &Path) -> Result<()> {
        trainer::write_model_dir(dir, self.base, &self.evaluator.config, &self.graph_tensors)
    }
}

/// Trains from `base` (a BERT checkpoint directory) into `out`; see
/// [`trainer::run`] for the files and for resuming.
pub fn train(
    base: &Path,
    data: TrainData,
    out: &Path,
    config: TrainConfig,
    keep_going: impl FnMut(usize) -> bool,
) -> Result<Outcome> {
    let device = Device::Cpu;
    let ckpt = checkpoint::load(base, &device)?;
    let labels = label_set(data.train);
    let model_config = TokenClassifierConfig {
        bert: ckpt.config.clone(),
        labels: labels.clone(),
    };
    let mut tensors = ckpt.tensors;
    trainer::init_linear(
        &mut tensors,
        "classifier",
        labels.len(),
        model_config.bert.hidden_size,
        &mut SplitMix64::new(config.seed),
    )?;
    let (graph_tensors, vars) = trainer::bert_vars(tensors, out, &config)?;
    let model = TokenClassifier::load(
        VarBuilder::from_tensors(graph_tensors.clone(), DType::F32, &device),
        &model_config,
    )?;
    let mut optimizer = AdamW::new(vars, config.weight_decay)?;
    let evaluator = NerModel {
        model: TokenClassifier::load(
            VarBuilder::from_tensors(trainer::detached(&graph_tensors), DType::F32, &device),
            &model_config,
        )?,
        tokenizer: ckpt.tokenizer,
        config: model_config.clone(),
        device: device.clone(),
    };
    let max_len = config
        .max_len
        .min(model_config.bert.max_position_embeddings);
    let windows = make_windows(
        &evaluator.tokenizer,
        data.train,
        &labels,
        max_len,
        config.stride.min(max_len - 2),
    )?;
    let task = NerTask {
        model,
        evaluator,
        graph_tensors,
        windows,
        dev: data.dev,
        base,
    };
    trainer::run(
        &task,
        &mut optimizer,
        out,
        &config,
        serde_json::json!(labels),
        keep_going,
    )
}

/// The sentences of an IOB file (`token<TAB>tag` lines).
pub fn read_iob_file(path: &Path) -> Result<Vec<Sentence>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_iob(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Strict span counts of `model` on an IOB file, with a progress bar.
pub fn score_file(model: &NerModel, path: &Path) -> Result<SpanCounts> {
    let sentences = read_iob_file(path)?;
    let bar = progress::bar(sentences.len(), "tagging", "sentences");
    let counts = model.evaluate(&sentences, &bar)?;
    bar.finish_and_clear();
    Ok(counts)
}

/// `ner export`: quantizes a trained model into `out` and records its span
/// F1 on each of `eval_files` (named by their last two path parts) in the
/// manifest.
pub fn export_scored(
    model: &Path,
    out: &Path,
    eval_files: &[PathBuf],
    provenance: &str,
) -> Result<()> {
    crate::export::write_model_files(model, out)?;
    let quantized = NerModel::load(out)?;
    let mut metrics = BTreeMap::new();
    for file in eval_files {
        let counts = score_file(&quantized, file)?;
        let name = file
            .iter()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<PathBuf>();
        eprintln!("{}: span F1 {:.4}", name.display(), counts.f1());
        metrics.insert(format!("span-f1 {}", name.display()), counts.f1());
    }
    crate::export::write_manifest(
        out,
        &integrabner_core::bundle::TEXT_MODEL_FILES,
        provenance,
        metrics,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_o_then_bio_pairs() {
        let s = Sentence {
            words: vec!["a".into(), "b".into()],
            tags: vec!["B-Disease".into(), "I-Disease".into()],
        };
        assert_eq!(label_set(&[s]), ["O", "B-Disease", "I-Disease"]);
    }
}
