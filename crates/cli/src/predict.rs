//! `integrabner predict`: OpenI archives, JSONL of {"id","text"}, a text file or stdin.

use crate::{open_output, source, EXIT_OK, EXIT_PARTIAL};
use anyhow::{Context, Result};
use integrabner_core::RulePipeline;
use integrabner_models::report::{analyse_report, ReportTagger};
use integrabner_train::report::load_tagger;
use serde::Deserialize;
use std::io::{BufRead, Read, Write};
use std::path::Path;

#[derive(Deserialize)]
struct InputLine {
    id: String,
    text: String,
}

/// Where `predict` looks for the report model when not told.
const DEFAULT_TEXT_MODEL: &str = "models/text";

/// The report model to use: `--text-model`, else `models/text` when it is
/// there, else none (rules only, said on stderr).
fn text_model(path: Option<&Path>, rules_only: bool) -> Result<Option<ReportTagger>> {
    if rules_only {
        return Ok(None);
    }
    let dir = match path {
        Some(p) => p.to_path_buf(),
        None if Path::new(DEFAULT_TEXT_MODEL).join("config.json").exists() => {
            DEFAULT_TEXT_MODEL.into()
        }
        None => {
            eprintln!(
                "note: no report model in {DEFAULT_TEXT_MODEL}; rules only (pass --text-model DIR)"
            );
            return Ok(None);
        }
    };
    let tagger = load_tagger(&dir)
        .with_context(|| format!("cannot load the report model in {}", dir.display()))?;
    Ok(Some(tagger))
}

pub fn run(
    input: Option<&Path>,
    output: Option<&Path>,
    text_model_dir: Option<&Path>,
    rules_only: bool,
) -> Result<u8> {
    let pipeline = RulePipeline::embedded();
    let tagger = text_model(text_model_dir, rules_only)?;
    if let Some(t) = &tagger {
        t.check_rules(&pipeline)?;
    }
    let mut out = open_output(output)?;
    let mut skipped = 0usize;
    // Writes one prediction; returns how many reports were skipped (0 or 1).
    let emit = |id: &str, text: &str, out: &mut dyn Write| -> Result<usize> {
        let analysed = analyse_report(tagger.as_ref(), &pipeline, id, text);
        match analysed {
            Ok(a) => {
                if let Some(note) = a.note {
                    eprintln!("note: report {id}: {note}");
                }
                serde_json::to_writer(&mut *out, &a.prediction)?;
                out.write_all(b"\n")?;
                Ok(0)
            }
            Err(e) => {
                eprintln!("warning: report {id}: {e}; skipped");
                Ok(1)
            }
        }
    };
    let name = input.map(|p| p.to_string_lossy().into_owned());
    match (input, name.as_deref()) {
        (Some(path), Some(n))
            if n != "-" && (path.is_dir() || n.ends_with(".tgz") || n.ends_with(".tar.gz")) =>
        {
            let corpus = source::load_corpus(path, None)?;
            skipped += corpus.skipped();
            for r in &corpus.reports {
                skipped += emit(&r.id, &r.text(), &mut out)?;
            }
        }
        (Some(path), Some(n)) if n.ends_with(".jsonl") => {
            let file = std::fs::File::open(path).with_context(|| format!("cannot open {n}"))?;
            for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
                let line =
                    line.with_context(|| format!("{n}: line {} is not readable text", i + 1))?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<InputLine>(&line) {
                    Ok(l) => skipped += emit(&l.id, &l.text, &mut out)?,
                    Err(e) => {
                        eprintln!("warning: {n}: line {}: expected {{\"id\": str, \"text\": str}} ({e}); skipped", i + 1);
                        skipped += 1;
                    }
                }
            }
        }
        (Some(path), Some(n)) if n != "-" => {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {n}"))?;
            let text =
                String::from_utf8(bytes).with_context(|| format!("{n} is not UTF-8 text"))?;
            let id = path
                .file_stem()
                .map_or("report".into(), |s| s.to_string_lossy().into_owned());
            skipped += emit(&id, &text, &mut out)?;
        }
        _ => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("standard input is not UTF-8 text")?;
            skipped += emit("stdin", &text, &mut out)?;
        }
    }
    out.flush()?;
    Ok(if skipped > 0 { EXIT_PARTIAL } else { EXIT_OK })
}
