//! The training loop shared by every model: batches of similar length in a
//! seeded order, AdamW with warm-up and linear decay, gradient clipping, a
//! progress bar with loss and throughput, a score on the development set after
//! each epoch with early stopping, and a resumable state saved every few
//! batches. What a model computes is its [`Task`].

use crate::adamw::AdamW;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use integrabner_core::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

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
    /// Epochs without a better development score before stopping.
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

/// What one model trains on and how it is scored.
pub trait Task {
    type Item;
    /// The training items (windows, reports), in a fixed order.
    fn items(&self) -> &[Self::Item];
    /// Word pieces in an item: batches group items of similar length, and
    /// throughput counts them.
    fn length(&self, item: &Self::Item) -> usize;
    /// Mean loss of a batch; `rng` drives dropout.
    fn loss(&self, batch: &[&Self::Item], rng: &mut SplitMix64) -> Result<Tensor>;
    /// What `length` counts, for the throughput in the log.
    fn unit(&self) -> &str {
        "tokens"
    }
    /// What `dev_score` measures, for the log ("dev span F1").
    fn score_name(&self) -> &str;
    /// Score on the development set with the current weights; higher is better.
    fn dev_score(&self) -> Result<f64>;
    /// Writes the current model as a loadable directory.
    fn write_model(&self, dir: &Path) -> Result<()>;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    #[serde(alias = "dev_f1")]
    pub dev_score: f64,
    pub seconds: f64,
    pub tokens_per_second: f64,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every epoch ran, or early stopping ended it.
    Finished(Vec<EpochRecord>),
    /// `keep_going` said stop; the state is saved and the next call resumes.
    Interrupted { optimizer_step: usize },
}

/// Progress of a run, saved with every checkpoint so that a run resumes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    config: TrainConfig,
    /// What the task says defines it (its label sets): a resumed run must match.
    #[serde(alias = "labels")]
    task: serde_json::Value,
    epoch: usize,
    /// Batches of `epoch` already done.
    batch_in_epoch: usize,
    optimizer_step: usize,
    dropout_rng: u64,
    #[serde(alias = "best_dev_f1")]
    best_dev_score: f64,
    epochs_without_improvement: usize,
    history: Vec<EpochRecord>,
    loss_sum: f64,
    loss_batches: usize,
    epoch_tokens: usize,
    epoch_seconds: f64,
}

const STATE_DIR: &str = "state";
const WEIGHTS_FILE: &str = "weights.safetensors";

/// The trained weights saved by an earlier, unfinished run in `out`, to put
/// in place of the starting weights before the variables are made.
pub fn saved_weights(out: &Path, device: &Device) -> Result<Option<HashMap<String, Tensor>>> {
    let state = out.join(STATE_DIR);
    if !state.join("run.json").exists() {
        return Ok(None);
    }
    Ok(Some(candle_core::safetensors::load(
        state.join(WEIGHTS_FILE),
        device,
    )?))
}

/// Trains `task` with `optimizer` (over the task's variables). The model with
/// the best development score goes to `out/best`; `out/state` holds the
/// resumable state, and a run that was interrupted (by `keep_going` returning
/// false after a step, or by a crash, from its last checkpoint) continues from
/// it with the same result as an uninterrupted run, provided the variables
/// were made from [`saved_weights`].
pub fn run<T: Task>(
    task: &T,
    optimizer: &mut AdamW,
    out: &Path,
    config: &TrainConfig,
    signature: serde_json::Value,
    mut keep_going: impl FnMut(usize) -> bool,
) -> Result<Outcome> {
    let device = Device::Cpu;
    std::fs::create_dir_all(out)?;
    let state_dir = out.join(STATE_DIR);
    let resumed: Option<RunState> = std::fs::read_to_string(state_dir.join("run.json"))
        .ok()
        .map(|t| serde_json::from_str(&t))
        .transpose()
        .context("state/run.json is damaged; delete it to start over")?;

    let items = task.items();
    let steps_per_epoch = items.len().div_ceil(config.batch_size);
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
            if r.config != *config || r.task != signature {
                bail!(
                    "{} was started with other settings or data; use another --out or the same settings",
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
            task: signature,
            epoch: 0,
            batch_in_epoch: 0,
            optimizer_step: 0,
            dropout_rng: config.seed ^ 0xD00D,
            best_dev_score: f64::MIN,
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
        candle_core::safetensors::save(&weights, state_dir.join(WEIGHTS_FILE))?;
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
            items,
            |i| task.length(i),
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
            let batch = &order[run.batch_in_epoch];
            let l = task.loss(batch, &mut rng)?;
            let value = l.to_scalar::<f32>()?;
            if !value.is_finite() {
                bail!(
                    "the loss is {value} at step {}; lower the learning rate (the last good state is in {})",
                    run.optimizer_step + 1,
                    state_dir.display()
                );
            }
            let mut grads = l.backward()?;
            optimizer.clip(&mut grads, config.max_grad_norm)?;
            optimizer.apply(&grads, lr_at(run.optimizer_step))?;
            run.optimizer_step += 1;
            run.batch_in_epoch += 1;
            run.loss_sum += value as f64;
            run.loss_batches += 1;
            run.epoch_tokens += batch.iter().map(|i| task.length(i)).sum::<usize>();
            run.epoch_seconds = seconds_before + started.elapsed().as_secs_f64();
            run.dropout_rng = rng.state();
            bar.set_message(format!(
                "loss {:.4}, {:.1} {}/s",
                run.loss_sum / run.loss_batches as f64,
                run.epoch_tokens as f64 / run.epoch_seconds.max(1e-9),
                task.unit()
            ));
            bar.inc(1);
            if !keep_going(run.optimizer_step) {
                save_state(&run, optimizer)?;
                bar.abandon();
                return Ok(Outcome::Interrupted {
                    optimizer_step: run.optimizer_step,
                });
            }
            if run.batch_in_epoch % config.checkpoint_every == 0 {
                save_state(&run, optimizer)?;
            }
        }
        bar.finish_and_clear();

        let dev_score = task.dev_score()?;
        let record = EpochRecord {
            epoch: run.epoch + 1,
            train_loss: run.loss_sum / run.loss_batches.max(1) as f64,
            dev_score,
            seconds: run.epoch_seconds,
            tokens_per_second: run.epoch_tokens as f64 / run.epoch_seconds.max(1e-9),
        };
        eprintln!(
            "epoch {}: train loss {:.4}, {} {:.4}, {:.0} s, {:.1} {}/s",
            record.epoch,
            record.train_loss,
            task.score_name(),
            record.dev_score,
            record.seconds,
            record.tokens_per_second,
            task.unit()
        );
        if dev_score > run.best_dev_score {
            run.best_dev_score = dev_score;
            run.epochs_without_improvement = 0;
            task.write_model(&out.join("best"))?;
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
        save_state(&run, optimizer)?;
    }
    std::fs::write(
        out.join("history.json"),
        serde_json::to_string_pretty(&run.history)?,
    )?;
    Ok(Outcome::Finished(run.history))
}

/// Batches of items of similar length (little padding), in an order shuffled
/// by `seed`.
fn batches<I>(items: &[I], length: impl Fn(&I) -> usize, size: usize, seed: u64) -> Vec<Vec<&I>> {
    let mut sorted: Vec<&I> = items.iter().collect();
    sorted.sort_by_key(|i| length(i));
    let mut out: Vec<Vec<&I>> = sorted.chunks(size).map(<[_]>::to_vec).collect();
    SplitMix64::new(seed).shuffle(&mut out);
    out
}

/// A model's tensors by name (vars and frozen tensors alike) and its
/// trainable variables.
pub type ModelVars = (HashMap<String, Tensor>, Vec<(String, candle_core::Var)>);

/// The variables of a model: every starting tensor (overridden by `resumed`)
/// becomes a trainable variable unless `frozen` says otherwise. Returns the
/// tensors to build the model from (vars and frozen tensors alike) and the
/// variables for the optimizer, sorted by name.
pub fn make_vars(
    mut tensors: HashMap<String, Tensor>,
    resumed: Option<HashMap<String, Tensor>>,
    frozen: impl Fn(&str) -> bool,
) -> Result<ModelVars> {
    if let Some(saved) = resumed {
        tensors.extend(saved);
    }
    let mut names: Vec<String> = tensors.keys().cloned().collect();
    names.sort();
    let mut vars = Vec::new();
    let mut graph = HashMap::new();
    for name in names {
        let t = tensors.remove(&name).expect("name taken from the map");
        if frozen(&name) {
            graph.insert(name, t);
        } else {
            let v = candle_core::Var::from_tensor(&t)?;
            graph.insert(name.clone(), v.as_tensor().clone());
            vars.push((name, v));
        }
    }
    Ok((graph, vars))
}

/// The name of BERT's word-embedding table in a task model.
const WORD_EMBEDDINGS: &str = "bert.embeddings.word_embeddings.weight";

/// The variables of a BERT task model trained into `out`: the starting
/// `tensors`, replaced by those of an unfinished run in `out` if there is one,
/// with the word embeddings frozen when `config` says so.
pub fn bert_vars(
    tensors: HashMap<String, Tensor>,
    out: &Path,
    config: &TrainConfig,
) -> Result<ModelVars> {
    make_vars(tensors, saved_weights(out, &Device::Cpu)?, |n| {
        config.freeze_word_embeddings && n == WORD_EMBEDDINGS
    })
}

/// The tensors outside the autograd graph, sharing their storage: vars are
/// updated in place, so these see every optimizer step made so far.
pub fn detached(tensors: &HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.detach()))
        .collect()
}

/// Writes a loadable model directory: config, all weights (trained and
/// frozen), and the base checkpoint's tokenizer files.
pub fn write_model_dir(
    dir: &Path,
    base: &Path,
    config: &impl Serialize,
    tensors: &HashMap<String, Tensor>,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    candle_core::safetensors::save(&detached(tensors), dir.join("model.safetensors"))?;
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(config)?,
    )?;
    for file in ["tokenizer.json", "vocab.txt", "tokenizer_config.json"] {
        let from = base.join(file);
        if from.exists() {
            std::fs::copy(&from, dir.join(file))?;
        }
    }
    Ok(())
}

/// A `[rows, cols]` head initialized N(0, 0.02) as BERT initializes its
/// linear layers, with a zero bias, named `{prefix}.weight` / `{prefix}.bias`.
pub fn init_linear(
    tensors: &mut HashMap<String, Tensor>,
    prefix: &str,
    rows: usize,
    cols: usize,
    rng: &mut SplitMix64,
) -> Result<()> {
    let w: Vec<f32> = (0..rows * cols).map(|_| rng.next_normal() * 0.02).collect();
    tensors.insert(
        format!("{prefix}.weight"),
        Tensor::from_vec(w, (rows, cols), &Device::Cpu)?,
    );
    tensors.insert(
        format!("{prefix}.bias"),
        Tensor::zeros(rows, candle_core::DType::F32, &Device::Cpu)?,
    );
    Ok(())
}
