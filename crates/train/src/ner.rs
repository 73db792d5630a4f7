//! Token-classification (NER) training and evaluation on IOB corpora.
//!
//! Words are split into word pieces; a word's label sits on its first piece
//! and the other pieces are ignored by the loss. Sentences longer than a
//! window are cut into overlapping windows; at prediction time each word takes
//! its label from the window where it has the most context on both sides.

use crate::adamw::AdamW;
use crate::checkpoint;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::VarBuilder;
use indicatif::{ProgressBar, ProgressStyle};
use integrabner_models::iob::{Sentence, SpanCounts};
use integrabner_models::rng::SplitMix64;
use integrabner_models::token_classifier::{TokenClassifier, TokenClassifierConfig};
use integrabner_models::tokenizer::{windows, BertTokenizer};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Loss target of a piece that carries no label.
const IGNORE: i64 = -1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Fraction of all steps spent warming the learning rate up from 0.
    pub warmup: f64,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    pub seed: u64,
    /// Word pieces per window, [CLS] and [SEP] included.
    pub max_len: usize,
    pub stride: usize,
    /// Epochs without a better development F1 before stopping.
    pub patience: usize,
    /// The 11.7 M-parameter word-embedding table stays as pre-trained: about
    /// 1.4x faster steps and half the memory.
    pub freeze_word_embeddings: bool,
    pub checkpoint_every: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 4,
            batch_size: 16,
            learning_rate: 1e-4,
            warmup: 0.06,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            seed: 17,
            max_len: 128,
            stride: 96,
            patience: 1,
            freeze_word_embeddings: true,
            checkpoint_every: 100,
        }
    }
}

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
    tokens: usize,
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
        tokens: windows.iter().map(|w| w.ids.len()).sum(),
        positions: Tensor::new(positions.as_slice(), device)?,
        targets: Tensor::new(targets.as_slice(), device)?,
    })
}

/// Batches of windows of similar length (little padding), in an order
/// shuffled by `seed`.
fn batches(windows: &[Window], size: usize, seed: u64) -> Vec<Vec<&Window>> {
    let mut sorted: Vec<&Window> = windows.iter().collect();
    sorted.sort_by_key(|w| w.ids.len());
    let mut out: Vec<Vec<&Window>> = sorted.chunks(size).map(<[_]>::to_vec).collect();
    SplitMix64::new(seed).shuffle(&mut out);
    out
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

impl NerModel {
    /// Loads a model written by [`train`] (`config.json`, `model.safetensors`,
    /// `tokenizer.json` or `vocab.txt`).
    pub fn load(dir: &Path) -> Result<Self> {
        let device = Device::Cpu;
        let config: TokenClassifierConfig = serde_json::from_str(
            &std::fs::read_to_string(dir.join("config.json"))
                .with_context(|| format!("cannot read {}/config.json", dir.display()))?,
        )
        .context("config.json is not a token-classifier config")?;
        let tensors = checkpoint::load_tensors(dir, &device)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        Ok(Self {
            model: TokenClassifier::load(vb, &config)?,
            tokenizer: checkpoint::load_tokenizer(dir)?,
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
        // Best (margin, label, probability) per (sentence, word).
        let mut best: Vec<Vec<(usize, usize, f32)>> = sentences
            .iter()
            .map(|s| vec![(0, 0, 0.0); s.words.len()])
            .collect();
        let mut order: Vec<&Window> = windows.iter().collect();
        order.sort_by_key(|w| w.ids.len());
        for chunk in order.chunks(32) {
            let b = batch(chunk, self.tokenizer.pad, &self.device)?;
            let logits = self.model.forward(&b.ids, &b.mask, None)?;
            let probs: Vec<Vec<Vec<f32>>> =
                candle_nn::ops::softmax(&logits, D::Minus1)?.to_vec3()?;
            for (w, rows) in chunk.iter().zip(probs) {
                let n = w.ids.len();
                for (t, word) in w.first_piece_of.iter().enumerate() {
                    let Some(word) = *word else { continue };
                    let margin = t.min(n - 1 - t) + 1;
                    let slot = &mut best[w.sentence][word];
                    if margin > slot.0 {
                        let (label, p) =
                            rows[t]
                                .iter()
                                .enumerate()
                                .fold(
                                    (0, f32::MIN),
                                    |acc, (i, &p)| if p > acc.1 { (i, p) } else { acc },
                                );
                        *slot = (margin, label, p);
                    }
                }
            }
            progress.inc(chunk.len() as u64);
        }
        Ok(best
            .into_iter()
            .map(|words| {
                let mut tags: Vec<String> = words
                    .iter()
                    .map(|&(_, l, _)| self.config.labels[l].clone())
                    .collect();
                repair_iob(&mut tags);
                tags.into_iter().zip(words.iter().map(|w| w.2)).collect()
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

/// An `I-X` after `O` or another type becomes `B-X`, so that the prediction
/// is valid IOB (it starts a span either way under conlleval's rule).
fn repair_iob(tags: &mut [String]) {
    for i in 0..tags.len() {
        if let Some(ty) = tags[i].strip_prefix("I-") {
            let continues = i > 0 && tags[i - 1].split_once('-').is_some_and(|(_, t)| t == ty);
            if !continues {
                tags[i] = format!("B-{ty}");
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub dev_f1: f64,
    pub seconds: f64,
    pub tokens_per_second: f64,
}

/// Progress of a run, saved with every checkpoint so that `train` resumes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    config: TrainConfig,
    labels: Vec<String>,
    epoch: usize,
    /// Batches of `epoch` already done.
    batch_in_epoch: usize,
    optimizer_step: usize,
    dropout_rng: u64,
    best_dev_f1: f64,
    epochs_without_improvement: usize,
    history: Vec<EpochRecord>,
    loss_sum: f64,
    loss_batches: usize,
    epoch_tokens: usize,
    epoch_seconds: f64,
}

pub struct TrainData<'a> {
    pub train: &'a [Sentence],
    pub dev: &'a [Sentence],
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every epoch ran, or early stopping ended it.
    Finished(Vec<EpochRecord>),
    /// `keep_going` said stop; the state is saved and the next call resumes.
    Interrupted { optimizer_step: usize },
}

/// Trains from `base` (a BERT checkpoint directory) into `out`. The best
/// model by development span F1 is written to `out/best`; `out/state` holds
/// the resumable state, and a run that was interrupted (by `keep_going`
/// returning false after a step, or by a crash, from its last checkpoint)
/// continues from it, with the same result as an uninterrupted run.
pub fn train(
    base: &Path,
    data: TrainData,
    out: &Path,
    config: TrainConfig,
    mut keep_going: impl FnMut(usize) -> bool,
) -> Result<Outcome> {
    let device = Device::Cpu;
    std::fs::create_dir_all(out)?;
    let state_dir = out.join("state");
    let ckpt = checkpoint::load(base, &device)?;
    let resumed: Option<RunState> = std::fs::read_to_string(state_dir.join("run.json"))
        .ok()
        .map(|t| serde_json::from_str(&t))
        .transpose()
        .context("state/run.json is damaged; delete it to start over")?;
    let labels = resumed
        .as_ref()
        .map(|r| r.labels.clone())
        .unwrap_or_else(|| label_set(data.train));
    let model_config = TokenClassifierConfig {
        bert: ckpt.config.clone(),
        labels: labels.clone(),
    };

    let mut tensors = ckpt.tensors;
    let mut init_rng = SplitMix64::new(config.seed);
    let hidden = model_config.bert.hidden_size;
    let head: Vec<f32> = (0..labels.len() * hidden)
        .map(|_| init_rng.next_normal() * 0.02)
        .collect();
    tensors.insert(
        "classifier.weight".into(),
        Tensor::from_vec(head, (labels.len(), hidden), &device)?,
    );
    tensors.insert(
        "classifier.bias".into(),
        Tensor::zeros(labels.len(), DType::F32, &device)?,
    );
    if resumed.is_some() {
        for (name, t) in
            candle_core::safetensors::load(state_dir.join("weights.safetensors"), &device)?
        {
            tensors.insert(name, t);
        }
    }
    let mut names: Vec<String> = tensors.keys().cloned().collect();
    names.sort();
    let frozen =
        |n: &str| config.freeze_word_embeddings && n == "bert.embeddings.word_embeddings.weight";
    let mut vars = Vec::new();
    let mut graph_tensors = HashMap::new();
    for name in names {
        let t = tensors.remove(&name).expect("name taken from the map");
        if frozen(&name) {
            graph_tensors.insert(name, t);
        } else {
            let v = Var::from_tensor(&t)?;
            graph_tensors.insert(name.clone(), v.as_tensor().clone());
            vars.push((name, v));
        }
    }
    let model = TokenClassifier::load(
        VarBuilder::from_tensors(graph_tensors.clone(), DType::F32, &device),
        &model_config,
    )?;
    let mut optimizer = AdamW::new(vars, config.weight_decay)?;
    // The same weights outside the autograd graph, for the development score
    // after each epoch: vars are updated in place, so it follows training.
    let evaluator = NerModel {
        model: TokenClassifier::load(
            VarBuilder::from_tensors(detached(&graph_tensors), DType::F32, &device),
            &model_config,
        )?,
        tokenizer: ckpt.tokenizer,
        config: model_config.clone(),
        device: device.clone(),
    };

    let max_len = config
        .max_len
        .min(model_config.bert.max_position_embeddings);
    let train_windows = make_windows(
        &evaluator.tokenizer,
        data.train,
        &labels,
        max_len,
        config.stride.min(max_len - 2),
    )?;
    let steps_per_epoch = train_windows.len().div_ceil(config.batch_size);
    let total_steps = steps_per_epoch * config.epochs;
    let warmup_steps = ((total_steps as f64) * config.warmup).ceil().max(1.0) as usize;
    let lr_at = |step: usize| {
        if step < warmup_steps {
            config.learning_rate * (step + 1) as f64 / warmup_steps as f64
        } else {
            config.learning_rate * (total_steps.saturating_sub(step)) as f64
                / (total_steps - warmup_steps).max(1) as f64
        }
    };

    let mut run = match resumed {
        Some(r) => {
            if r.config != config {
                bail!(
                    "{} was started with other settings; use another --out or the same settings",
                    out.display()
                );
            }
            let state =
                candle_core::safetensors::load(state_dir.join("optimizer.safetensors"), &device)?;
            optimizer.restore(&state, r.optimizer_step)?;
            eprintln!(
                "resuming at epoch {}, batch {}",
                r.epoch + 1,
                r.batch_in_epoch
            );
            r
        }
        None => RunState {
            config: config.clone(),
            labels: labels.clone(),
            epoch: 0,
            batch_in_epoch: 0,
            optimizer_step: 0,
            dropout_rng: config.seed ^ 0xD00D,
            best_dev_f1: -1.0,
            epochs_without_improvement: 0,
            history: Vec::new(),
            loss_sum: 0.0,
            loss_batches: 0,
            epoch_tokens: 0,
            epoch_seconds: 0.0,
        },
    };
    let save_state = |run: &RunState, optimizer: &AdamW| -> Result<()> {
        std::fs::create_dir_all(&state_dir)?;
        let weights: HashMap<String, Tensor> = optimizer
            .params()
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        candle_core::safetensors::save(&weights, state_dir.join("weights.safetensors"))?;
        candle_core::safetensors::save(
            &optimizer.state(),
            state_dir.join("optimizer.safetensors"),
        )?;
        // Written last: a run.json always describes complete tensor files.
        let tmp = state_dir.join("run.json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(run)?)?;
        std::fs::rename(tmp, state_dir.join("run.json"))?;
        Ok(())
    };

    while run.epoch < config.epochs && run.epochs_without_improvement <= config.patience {
        let order = batches(
            &train_windows,
            config.batch_size,
            config.seed.wrapping_add(run.epoch as u64),
        );
        let bar = ProgressBar::new(order.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} batches, {msg} ({eta} left)",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", run.epoch + 1, config.epochs));
        bar.set_position(run.batch_in_epoch as u64);
        let mut rng = SplitMix64::new(run.dropout_rng);
        let started = Instant::now();
        let seconds_before = run.epoch_seconds;
        while run.batch_in_epoch < order.len() {
            let b = batch(&order[run.batch_in_epoch], evaluator.tokenizer.pad, &device)?;
            let l = loss(&model, &b, Some(&mut rng))?;
            let mut grads = l.backward()?;
            optimizer.clip(&mut grads, config.max_grad_norm)?;
            optimizer.apply(&grads, lr_at(run.optimizer_step))?;
            run.optimizer_step += 1;
            run.batch_in_epoch += 1;
            run.loss_sum += l.to_scalar::<f32>()? as f64;
            run.loss_batches += 1;
            run.epoch_tokens += b.tokens;
            run.epoch_seconds = seconds_before + started.elapsed().as_secs_f64();
            run.dropout_rng = rng.state();
            bar.set_message(format!(
                "loss {:.4}, {:.0} tokens/s",
                run.loss_sum / run.loss_batches as f64,
                run.epoch_tokens as f64 / run.epoch_seconds.max(1e-9)
            ));
            bar.inc(1);
            if !keep_going(run.optimizer_step) {
                save_state(&run, &optimizer)?;
                bar.abandon();
                return Ok(Outcome::Interrupted {
                    optimizer_step: run.optimizer_step,
                });
            }
            if run.batch_in_epoch % config.checkpoint_every == 0 {
                save_state(&run, &optimizer)?;
            }
        }
        bar.finish_and_clear();

        let dev_f1 = evaluator.evaluate(data.dev, &ProgressBar::hidden())?.f1();
        let record = EpochRecord {
            epoch: run.epoch + 1,
            train_loss: run.loss_sum / run.loss_batches.max(1) as f64,
            dev_f1,
            seconds: run.epoch_seconds,
            tokens_per_second: run.epoch_tokens as f64 / run.epoch_seconds.max(1e-9),
        };
        eprintln!(
            "epoch {}: train loss {:.4}, dev span F1 {:.4}, {:.0} s, {:.0} tokens/s",
            record.epoch,
            record.train_loss,
            record.dev_f1,
            record.seconds,
            record.tokens_per_second
        );
        if dev_f1 > run.best_dev_f1 {
            run.best_dev_f1 = dev_f1;
            run.epochs_without_improvement = 0;
            write_model(&out.join("best"), base, &model_config, &graph_tensors)?;
        } else {
            run.epochs_without_improvement += 1;
        }
        run.history.push(record);
        run.epoch += 1;
        run.batch_in_epoch = 0;
        run.loss_sum = 0.0;
        run.loss_batches = 0;
        run.epoch_tokens = 0;
        run.epoch_seconds = 0.0;
        save_state(&run, &optimizer)?;
    }
    std::fs::write(
        out.join("history.json"),
        serde_json::to_string_pretty(&run.history)?,
    )?;
    Ok(Outcome::Finished(run.history))
}

/// The tensors outside the autograd graph, sharing their storage: vars are
/// updated in place, so these see every optimizer step made so far.
fn detached(tensors: &HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.detach()))
        .collect()
}

/// Writes a loadable model directory: config, all weights (trained and
/// frozen), and the base checkpoint's tokenizer files.
fn write_model(
    dir: &Path,
    base: &Path,
    config: &TokenClassifierConfig,
    graph_tensors: &HashMap<String, Tensor>,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    candle_core::safetensors::save(&detached(graph_tensors), dir.join("model.safetensors"))?;
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(config)?,
    )?;
    for file in ["tokenizer.json", "vocab.txt", "tokenizer_config.json"] {
        let from: PathBuf = base.join(file);
        if from.exists() {
            std::fs::copy(&from, dir.join(file))?;
        }
    }
    Ok(())
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

    #[test]
    fn repair_turns_orphan_inside_tags_into_beginnings() {
        let mut tags: Vec<String> = ["I-D", "I-D", "O", "I-A", "B-D", "I-A"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        repair_iob(&mut tags);
        assert_eq!(tags, ["B-D", "I-D", "O", "B-A", "B-D", "B-A"]);
    }
}
