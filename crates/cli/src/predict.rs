//! `integrabner predict`: cases from OpenI (archive, XML directory or CSV
//! layout; with their images when
//! `--openi-images` names where they are), JSONL lines of
//! `{"id", "text"?, "image"?, "images"?}`, a text file, stdin, or images alone.

use crate::{open_output, source, EXIT_OK, EXIT_PARTIAL};
use anyhow::{bail, Context, Result};
use integrabner_core::RulePipeline;
use integrabner_models::case::{analyse_case, Models};
use integrabner_models::fusion::FusionTagger;
use integrabner_models::image_model::ImageTagger;
use integrabner_models::report::ReportTagger;
use integrabner_train::report::load_tagger;
use serde::Deserialize;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

/// One JSONL input line. Relative image paths are read from the JSONL file's
/// directory.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputLine {
    id: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    image: Option<PathBuf>,
    #[serde(default)]
    images: Vec<PathBuf>,
}

/// What `integrabner predict` was asked to do.
pub struct PredictOptions<'a> {
    pub input: Option<&'a Path>,
    pub output: Option<&'a Path>,
    pub text_model: Option<&'a Path>,
    pub image_model: Option<&'a Path>,
    pub fusion_model: Option<&'a Path>,
    pub rules_only: bool,
    /// Images of the single case read from a text file or stdin, or of an
    /// image-only case when there is no input.
    pub images: &'a [PathBuf],
    /// Where the OpenI images of an OpenI input are (either naming layout).
    pub openi_images: Option<&'a Path>,
    pub scores: bool,
}

/// Where `predict` looks for the models when not told.
const DEFAULT_TEXT_MODEL: &str = "models/text";
const DEFAULT_IMAGE_MODEL: &str = "models/image";
const DEFAULT_FUSION_MODEL: &str = "models/fusion";

/// The model directory to use: the one given, else the default when it has
/// a config, else none (said on stderr).
fn model_dir(given: Option<&Path>, default: &str, flag: &str) -> Option<PathBuf> {
    match given {
        Some(p) => Some(p.to_path_buf()),
        None if Path::new(default).join("config.json").exists() => Some(default.into()),
        None => {
            eprintln!("note: no model in {default} (pass {flag} DIR)");
            None
        }
    }
}

fn text_model(path: Option<&Path>, rules_only: bool) -> Result<Option<ReportTagger>> {
    if rules_only {
        return Ok(None);
    }
    let Some(dir) = model_dir(path, DEFAULT_TEXT_MODEL, "--text-model") else {
        return Ok(None);
    };
    let tagger = load_tagger(&dir)
        .with_context(|| format!("cannot load the report model in {}", dir.display()))?;
    Ok(Some(tagger))
}

/// `config.json` and `model.gguf` of a model directory.
fn read_model(dir: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    let read = |name: &str| {
        std::fs::read(dir.join(name))
            .with_context(|| format!("cannot read {}/{name}", dir.display()))
    };
    Ok((read("config.json")?, read("model.gguf")?))
}

fn image_model(path: Option<&Path>) -> Result<Option<ImageTagger>> {
    let Some(dir) = model_dir(path, DEFAULT_IMAGE_MODEL, "--image-model") else {
        return Ok(None);
    };
    let (config, weights) = read_model(&dir)?;
    let tagger = ImageTagger::from_bytes(&config, &weights)
        .with_context(|| format!("cannot load the image model in {}", dir.display()))?;
    Ok(Some(tagger))
}

fn fusion_model(path: Option<&Path>) -> Result<Option<FusionTagger>> {
    let Some(dir) = model_dir(path, DEFAULT_FUSION_MODEL, "--fusion-model") else {
        return Ok(None);
    };
    let (config, weights) = read_model(&dir)?;
    let tagger = FusionTagger::from_bytes(&config, &weights)
        .with_context(|| format!("cannot load the fusion model in {}", dir.display()))?;
    Ok(Some(tagger))
}

/// A case before analysis: its images are paths until `emit` reads them.
struct Case {
    id: String,
    text: String,
    images: Vec<PathBuf>,
}

/// The cases of the input.
fn read_cases(options: &PredictOptions) -> Result<(Vec<Case>, usize)> {
    let name = options.input.map(|p| p.to_string_lossy().into_owned());
    let single = !options.images.is_empty() || options.openi_images.is_none();
    match (options.input, name.as_deref()) {
        (Some(path), Some(n))
            if n != "-"
                && (path.is_dir()
                    || [".tgz", ".tar.gz", ".csv"].iter().any(|e| n.ends_with(e))) =>
        {
            if !options.images.is_empty() {
                bail!("--image belongs to a single report; for OpenI give --openi-images DIR");
            }
            let corpus = source::load_corpus(path, None)?;
            let files = match options.openi_images {
                Some(dir) => source::OpenIImages::open(dir)?,
                None => source::OpenIImages::default(),
            };
            let cases = corpus
                .reports
                .iter()
                .map(|r| Case {
                    id: r.id.clone(),
                    text: r.text(),
                    images: files.views(&r.images),
                })
                .collect();
            Ok((cases, corpus.skipped()))
        }
        (Some(path), Some(n)) if n.ends_with(".jsonl") => {
            if !single {
                bail!("--openi-images belongs to an OpenI input");
            }
            if !options.images.is_empty() {
                bail!("--image belongs to a single report; in JSONL give each line \"image\" or \"images\"");
            }
            read_jsonl(path, n)
        }
        (input, n) => {
            if !single {
                bail!("--openi-images belongs to an OpenI input");
            }
            let text = match (input, n) {
                (Some(path), Some(n)) if n != "-" => {
                    let bytes = std::fs::read(path).with_context(|| format!("cannot read {n}"))?;
                    String::from_utf8(bytes).with_context(|| format!("{n} is not UTF-8 text"))?
                }
                // Images alone: no report to wait for on stdin.
                (None, _) if !options.images.is_empty() => String::new(),
                _ => {
                    let mut text = String::new();
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .context("standard input is not UTF-8 text")?;
                    text
                }
            };
            let id = input
                .filter(|_| n != Some("-"))
                .or(options.images.first().map(PathBuf::as_path))
                .and_then(Path::file_stem)
                .map_or("stdin".into(), |s| s.to_string_lossy().into_owned());
            Ok((
                vec![Case {
                    id,
                    text,
                    images: options.images.to_vec(),
                }],
                0,
            ))
        }
    }
}

fn read_jsonl(path: &Path, n: &str) -> Result<(Vec<Case>, usize)> {
    let base = path.parent().unwrap_or(Path::new("."));
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {n}"))?;
    let (mut cases, mut skipped) = (Vec::new(), 0);
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{n}: line {} is not readable text", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<InputLine>(&line) {
            Ok(l) => cases.push(Case {
                id: l.id,
                text: l.text.unwrap_or_default(),
                images: l
                    .image
                    .into_iter()
                    .chain(l.images)
                    .map(|p| base.join(p))
                    .collect(),
            }),
            Err(e) => {
                eprintln!(
                    "warning: {n}: line {}: expected {{\"id\": str, \"text\"?: str, \"image\"?: path, \"images\"?: [path]}} ({e}); skipped",
                    i + 1
                );
                skipped += 1;
            }
        }
    }
    Ok((cases, skipped))
}

pub fn run(options: &PredictOptions) -> Result<u8> {
    let pipeline = RulePipeline::embedded();
    let report = text_model(options.text_model, options.rules_only)?;
    if let Some(t) = &report {
        t.check_rules(&pipeline)?;
    }
    let (cases, mut skipped) = read_cases(options)?;
    let image = if cases.iter().any(|c| !c.images.is_empty()) {
        image_model(options.image_model)?
    } else {
        None
    };
    if let Some(t) = &image {
        t.check_rules(&pipeline)?;
    }
    let fusion = if report.is_some()
        && image.is_some()
        && cases
            .iter()
            .any(|c| !c.images.is_empty() && !c.text.trim().is_empty())
    {
        fusion_model(options.fusion_model)?
    } else {
        None
    };
    if let (Some(f), Some(r), Some(i)) = (&fusion, &report, &image) {
        f.check_models(&pipeline, r, i)?;
    }
    let models = Models {
        rules: &pipeline,
        report: report.as_ref(),
        image: image.as_ref(),
        fusion: fusion.as_ref(),
    };
    let mut out = open_output(options.output)?;
    for case in &cases {
        let analysed = source::read_views(&case.images)
            .and_then(|views| Ok(analyse_case(models, &case.id, &case.text, &views)?));
        match analysed {
            Ok(mut a) => {
                if let Some(note) = a.note {
                    eprintln!("note: case {}: {note}", case.id);
                }
                if !options.scores {
                    a.prediction.scores.clear();
                }
                serde_json::to_writer(&mut out, &a.prediction)?;
                out.write_all(b"\n")?;
            }
            Err(e) => {
                eprintln!("warning: case {}: {e:#}; skipped", case.id);
                skipped += 1;
            }
        }
    }
    out.flush()?;
    Ok(if skipped > 0 { EXIT_PARTIAL } else { EXIT_OK })
}
