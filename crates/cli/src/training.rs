//! Running a training loop from the command line: Ctrl+C finishes the
//! current step, saves the state and exits 130; the same command resumes.

use crate::EXIT_OK;
use anyhow::{Context, Result};
use integrabner_train::trainer::{Outcome, TrainConfig};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The hyper-parameters a training command lets the user set; each one left
/// out keeps the command's own recipe (BERT models: 4 epochs, learning rate
/// 1e-4, batch 16, seed 17; ResNet-50 from scratch: see `image train-resnet`).
#[derive(clap::Args, Clone)]
pub struct TrainArgs {
    /// Epochs (a rerun with more resumes a finished run only if the rest is
    /// unchanged; the learning-rate schedule depends on it).
    #[arg(long)]
    epochs: Option<usize>,
    /// Peak learning rate, reached after warm-up.
    #[arg(long)]
    learning_rate: Option<f64>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// Train on only the first N training examples (quick trials).
    #[arg(long)]
    pub limit: Option<usize>,
}

impl TrainArgs {
    /// `defaults` with the user's settings.
    pub fn config(&self, defaults: TrainConfig) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs.unwrap_or(defaults.epochs),
            learning_rate: self.learning_rate.unwrap_or(defaults.learning_rate),
            batch_size: self.batch_size.unwrap_or(defaults.batch_size),
            seed: self.seed.unwrap_or(defaults.seed),
            ..defaults
        }
    }
}

/// Exit status of a training command that Ctrl+C stopped (state saved).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Runs `train` with a `keep_going` callback wired to Ctrl+C and reports how
/// it ended.
pub fn run_interruptibly(
    out: &Path,
    train: impl FnOnce(&mut dyn FnMut(usize) -> bool) -> Result<Outcome>,
) -> Result<u8> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("cannot install the Ctrl+C handler")?;
    let mut keep_going = |_| !interrupted.load(Ordering::SeqCst);
    match train(&mut keep_going)? {
        Outcome::Finished(history) => {
            let best = history.iter().map(|r| r.dev_score).fold(f64::NAN, f64::max);
            eprintln!(
                "best development score {best:.4}; model in {}",
                out.join("best").display()
            );
            Ok(EXIT_OK)
        }
        Outcome::Interrupted { optimizer_step } => {
            eprintln!(
                "interrupted after step {optimizer_step}; state saved in {}; run the same command to resume",
                out.join("state").display()
            );
            Ok(EXIT_INTERRUPTED)
        }
    }
}
