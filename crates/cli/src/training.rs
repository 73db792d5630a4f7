//! Running a training loop from the command line: Ctrl+C finishes the
//! current step, saves the state and exits 130; the same command resumes.

use crate::EXIT_OK;
use anyhow::{Context, Result};
use integrabner_train::trainer::{Outcome, TrainConfig};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The hyper-parameters a training command lets the user set.
#[derive(clap::Args, Clone)]
pub struct TrainArgs {
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    epochs: usize,
    #[arg(long, default_value_t = TrainConfig::default().learning_rate)]
    learning_rate: f64,
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    batch_size: usize,
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    seed: u64,
    /// Train on only the first N training examples (quick trials).
    #[arg(long)]
    pub limit: Option<usize>,
}

impl TrainArgs {
    /// `defaults` with the user's settings.
    pub fn config(&self, defaults: TrainConfig) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            learning_rate: self.learning_rate,
            batch_size: self.batch_size,
            seed: self.seed,
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
