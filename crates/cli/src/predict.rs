//! `integrabner predict`: OpenI archives, JSONL of {"id","text"}, a text file or stdin.

use crate::{open_output, source, EXIT_OK, EXIT_PARTIAL};
use anyhow::{Context, Result};
use integrabner_core::RulePipeline;
use serde::Deserialize;
use std::io::{BufRead, Read, Write};
use std::path::Path;

#[derive(Deserialize)]
struct InputLine {
    id: String,
    text: String,
}

pub fn run(input: Option<&Path>, output: Option<&Path>) -> Result<u8> {
    let pipeline = RulePipeline::embedded();
    let mut out = open_output(output)?;
    let mut skipped = 0usize;
    // Writes one prediction; returns how many reports were skipped (0 or 1).
    let emit = |id: &str, text: &str, out: &mut dyn Write| -> Result<usize> {
        match pipeline.predict(id, text) {
            Ok(p) => {
                serde_json::to_writer(&mut *out, &p)?;
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
