//! The progress bar of every long piece of work.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar for `len` items counted in `unit` (reports, images, windows) while
/// `what` happens to them.
pub fn bar(len: usize, what: &str, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{msg:>22}} [{{bar:40}}] {{pos}}/{{len}} {unit} ({{per_sec}}, {{eta}} left)"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}
