//! `integrabner predict`: cases from OpenI (archive, XML directory or CSV
//! layout; with their images when
//! `--openi-images` names where they are), JSONL lines of
//! `{"id", "text"?, "image"?, "images"?}`, a text file, stdin, or images alone.

use crate::model_dir::{self, Trust};
use crate::{open_output, EXIT_OK, EXIT_PARTIAL};
use anyhow::{bail, Context, Result};
use integrabner_core::cases::CaseLine;
use integrabner_core::pipeline::MAX_REPORT_CHARS;
use integrabner_core::RulePipeline;
use integrabner_models::engine::{CaseAnalysis, Engine};
use integrabner_models::fusion::FusionTagger;
use integrabner_models::image_model::ImageTagger;
use integrabner_models::report::ReportTagger;
use integrabner_train::bundle_dir;
use integrabner_train::files::{read_bounded, read_regular};
use integrabner_train::report::load_tagger;
use integrabner_train::source;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Largest report read from a file or stdin: the pipeline's character limit
/// at UTF-8's widest, so that the pipeline, not the reader, says a report is
/// too long.
const MAX_REPORT_BYTES: u64 = 4 * MAX_REPORT_CHARS as u64;
/// Longest JSONL line read: a report at its limit plus room for the rest.
const MAX_JSONL_LINE_BYTES: u64 = MAX_REPORT_BYTES + 64 * 1024;

/// What `integrabner predict` was asked to do.
#[derive(clap::Args)]
pub struct PredictArgs {
    input: Option<PathBuf>,
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// The whole model bundle (a directory such as models/, with the
    /// manifest.json `integrabner export` writes), every file verified
    /// before use: the loader of the browser and the Python package.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["text_model", "rules_only", "image_model", "fusion_model", "unverified"])]
    models: Option<PathBuf>,
    /// Cases analysed at once, each on its own thread; the output keeps
    /// the input's order.
    #[arg(short, long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: u16,
    /// Report model directory (a bundle such as models/text, or a training output).
    #[arg(long, conflicts_with = "rules_only")]
    text_model: Option<PathBuf>,
    /// Use the rule labeler alone for reports.
    #[arg(long)]
    rules_only: bool,
    /// Image model directory (a bundle such as models/image).
    #[arg(long)]
    image_model: Option<PathBuf>,
    /// Fusion model directory (models/fusion): a case with a report and
    /// images gets fused findings (source `fusion`).
    #[arg(long)]
    fusion_model: Option<PathBuf>,
    /// An image of the single case (repeat for frontal and lateral views).
    #[arg(long = "image", value_name = "FILE")]
    images: Vec<PathBuf>,
    /// Directory of the OpenI images (NLMCXR_png names such as
    /// CXR1_1_IM-0001-4001.png, or the CSV layout's 1_IM-0001-4001.dcm.png):
    /// each report of an OpenI input is analysed with its images.
    #[arg(long, value_name = "DIR")]
    openi_images: Option<PathBuf>,
    /// Add "scores": the probability of every concept the active models
    /// score, and "abnormal" for a case with an image (for ROC curves).
    #[arg(long)]
    scores: bool,
    /// Run model directories as they are, without checking every file
    /// against their manifest.json (size and SHA-256): for a training
    /// output, which has no manifest. A warning says so.
    #[arg(long)]
    unverified: bool,
}

impl PredictArgs {
    fn trust(&self) -> Trust {
        Trust::from_flag(self.unverified)
    }
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

fn text_model(path: Option<&Path>, rules_only: bool, trust: Trust) -> Result<Option<ReportTagger>> {
    if rules_only {
        return Ok(None);
    }
    let Some(dir) = model_dir(path, DEFAULT_TEXT_MODEL, "--text-model") else {
        return Ok(None);
    };
    let context = || format!("cannot load the report model in {}", dir.display());
    let tagger = match model_dir::read_bert(&dir, trust)? {
        Some([config, weights, tokenizer]) => {
            ReportTagger::from_bytes(&config, &weights, &tokenizer).map_err(anyhow::Error::from)
        }
        None => load_tagger(&dir),
    };
    Ok(Some(tagger.with_context(context)?))
}

/// `config.json` and `model.gguf` of a model directory, verified unless
/// the user said otherwise.
fn read_model(dir: &Path, trust: Trust) -> Result<[Vec<u8>; 2]> {
    trust.warn_if_unverified(dir);
    model_dir::read(dir, ["config.json", "model.gguf"], trust)
}

fn image_model(path: Option<&Path>, trust: Trust) -> Result<Option<ImageTagger>> {
    let Some(dir) = model_dir(path, DEFAULT_IMAGE_MODEL, "--image-model") else {
        return Ok(None);
    };
    let [config, weights] = read_model(&dir, trust)?;
    let tagger = ImageTagger::from_bytes(&config, &weights)
        .with_context(|| format!("cannot load the image model in {}", dir.display()))?;
    Ok(Some(tagger))
}

fn fusion_model(path: Option<&Path>, trust: Trust) -> Result<Option<FusionTagger>> {
    let Some(dir) = model_dir(path, DEFAULT_FUSION_MODEL, "--fusion-model") else {
        return Ok(None);
    };
    let [config, weights] = read_model(&dir, trust)?;
    let tagger = FusionTagger::from_bytes(&config, &weights)
        .with_context(|| format!("cannot load the fusion model in {}", dir.display()))?;
    Ok(Some(tagger))
}

/// A case before analysis: its images are paths until they are analysed.
struct Case {
    id: String,
    text: String,
    images: Vec<PathBuf>,
}

/// The cases of the input: listed up front (an OpenI corpus, one report),
/// or a JSONL file read line by line while it is analysed, so that memory
/// stays flat however many lines it has.
enum Input {
    Listed { cases: Vec<Case>, skipped: usize },
    Jsonl { path: PathBuf, name: String },
}

/// Which models the cases call for.
#[derive(Default)]
struct Needs {
    /// Some case has images: the image model.
    images: bool,
    /// Some case has a report and images: the fusion model.
    both: bool,
}

impl Needs {
    fn add(&mut self, case: &Case) {
        self.images |= !case.images.is_empty();
        self.both |= !case.images.is_empty() && !case.text.trim().is_empty();
    }
}

impl Input {
    /// What the cases need, known before anything is written: models are
    /// loaded (and refused) before the first line of output. A JSONL file is
    /// read once for this, keeping nothing; a stream (a named pipe) can be
    /// read only once, so it gets every model there is.
    fn needs(&self) -> Result<Needs> {
        let mut needs = Needs::default();
        match self {
            Self::Listed { cases, .. } => cases.iter().for_each(|c| needs.add(c)),
            Self::Jsonl { path, .. } if !path.is_file() => {
                needs.images = true;
                needs.both = true;
            }
            Self::Jsonl { path, name } => each_jsonl_case(path, name, |case| {
                if let Ok(case) = case {
                    needs.add(&case);
                }
                Ok(())
            })?,
        }
        Ok(needs)
    }

    /// Calls `f` with every case in input order, or with the reason a line
    /// is skipped; returns the inputs skipped before any case was read.
    fn each(self, mut f: impl FnMut(Result<Case, String>) -> Result<()>) -> Result<usize> {
        match self {
            Self::Listed { cases, skipped } => {
                for case in cases {
                    f(Ok(case))?;
                }
                Ok(skipped)
            }
            Self::Jsonl { path, name } => {
                each_jsonl_case(&path, &name, f)?;
                Ok(0)
            }
        }
    }
}

/// The cases of the input.
fn read_input(options: &PredictArgs) -> Result<Input> {
    let name = options
        .input
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned());
    let single = !options.images.is_empty() || options.openi_images.is_none();
    match (options.input.as_deref(), name.as_deref()) {
        (Some(path), Some(n))
            if n != "-"
                && (path.is_dir()
                    || [".tgz", ".tar.gz", ".csv"].iter().any(|e| n.ends_with(e))) =>
        {
            if !options.images.is_empty() {
                bail!("--image belongs to a single report; for OpenI give --openi-images DIR");
            }
            let corpus = source::load_corpus(path, None)?;
            let files = match &options.openi_images {
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
            Ok(Input::Listed {
                cases,
                skipped: corpus.skipped(),
            })
        }
        (Some(path), Some(n)) if n.ends_with(".jsonl") => {
            if !single {
                bail!("--openi-images belongs to an OpenI input");
            }
            if !options.images.is_empty() {
                bail!("--image belongs to a single report; in JSONL give each line \"image\" or \"images\"");
            }
            Ok(Input::Jsonl {
                path: path.to_path_buf(),
                name: n.to_string(),
            })
        }
        (input, n) => {
            if !single {
                bail!("--openi-images belongs to an OpenI input");
            }
            let text = match (input, n) {
                (Some(path), Some(n)) if n != "-" => {
                    // A named pipe (`<(…)`) is a fine report file too; a
                    // limit bounds what any stream can make us read.
                    let bytes = if path.is_file() {
                        read_regular(path, MAX_REPORT_BYTES)?
                    } else {
                        let file = std::fs::File::open(path)
                            .with_context(|| format!("cannot read {n}"))?;
                        read_bounded(file, MAX_REPORT_BYTES, n)?
                    };
                    String::from_utf8(bytes).with_context(|| format!("{n} is not UTF-8 text"))?
                }
                // Images alone: no report to wait for on stdin.
                (None, _) if !options.images.is_empty() => String::new(),
                _ => {
                    let bytes =
                        read_bounded(std::io::stdin().lock(), MAX_REPORT_BYTES, "standard input")?;
                    String::from_utf8(bytes).context("standard input is not UTF-8 text")?
                }
            };
            let id = input
                .filter(|_| n != Some("-"))
                .or(options.images.first().map(PathBuf::as_path))
                .and_then(Path::file_stem)
                .map_or("stdin".into(), |s| s.to_string_lossy().into_owned());
            Ok(Input::Listed {
                cases: vec![Case {
                    id,
                    text,
                    images: options.images.to_vec(),
                }],
                skipped: 0,
            })
        }
    }
}

/// One line of a JSONL file, at most `MAX_JSONL_LINE_BYTES` long.
enum JsonlLine {
    Text(String),
    TooLong,
    NotUtf8,
}

/// The next line of `reader` without its newline, or `None` at the end. An
/// overlong line is read past in bounded pieces, never held whole.
fn next_jsonl_line(reader: &mut impl BufRead) -> std::io::Result<Option<JsonlLine>> {
    let mut bytes = Vec::new();
    let n = std::io::Read::take(&mut *reader, MAX_JSONL_LINE_BYTES + 1)
        .read_until(b'\n', &mut bytes)?;
    if n == 0 {
        return Ok(None);
    }
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    } else if bytes.len() as u64 > MAX_JSONL_LINE_BYTES {
        reader.skip_until(b'\n')?;
        return Ok(Some(JsonlLine::TooLong));
    }
    Ok(Some(match String::from_utf8(bytes) {
        Ok(text) => JsonlLine::Text(text),
        Err(_) => JsonlLine::NotUtf8,
    }))
}

/// Calls `f` with the case of every non-blank line of the JSONL file `path`
/// (shown as `n`), or with the reason the line is skipped. Relative image
/// paths are read from the file's directory.
fn each_jsonl_case(
    path: &Path,
    n: &str,
    mut f: impl FnMut(Result<Case, String>) -> Result<()>,
) -> Result<()> {
    let base = path.parent().unwrap_or(Path::new("."));
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {n}"))?;
    let mut reader = std::io::BufReader::new(file);
    let mut number = 0;
    while let Some(line) =
        next_jsonl_line(&mut reader).with_context(|| format!("cannot read {n}"))?
    {
        number += 1;
        let case = match line {
            JsonlLine::TooLong => Err(format!(
                "{n}: line {number} is longer than {MAX_JSONL_LINE_BYTES} bytes"
            )),
            JsonlLine::NotUtf8 => Err(format!("{n}: line {number} is not UTF-8 text")),
            JsonlLine::Text(line) if line.trim().is_empty() => continue,
            JsonlLine::Text(line) => CaseLine::parse(&line)
                .and_then(|l| {
                    Ok(Case {
                        id: l.id.ok_or("the line has no \"id\"")?,
                        text: l.text,
                        images: l.images.iter().map(|p| base.join(p)).collect(),
                    })
                })
                .map_err(|e| format!("{n}: line {number}: {e}")),
        };
        f(case)?;
    }
    Ok(())
}

/// The engine of the bundle the user named, or of the model directories.
fn engine(options: &PredictArgs, input: &Input) -> Result<Engine> {
    if let Some(dir) = &options.models {
        return bundle_dir::load_engine(dir);
    }
    let report = text_model(
        options.text_model.as_deref(),
        options.rules_only,
        options.trust(),
    )?;
    let needs = input.needs()?;
    let image = if needs.images {
        image_model(options.image_model.as_deref(), options.trust())?
    } else {
        None
    };
    let fusion = if report.is_some() && image.is_some() && needs.both {
        fusion_model(options.fusion_model.as_deref(), options.trust())?
    } else {
        None
    };
    Ok(Engine::new(
        RulePipeline::embedded(),
        report,
        image,
        fusion,
    )?)
}

/// A case's analysis, or why it is skipped.
fn analyse(engine: &Engine, case: &Result<Case, String>) -> Result<CaseAnalysis> {
    let case = case.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
    let context = || format!("case {}", case.id);
    let views = source::read_views(&case.images).with_context(context)?;
    engine
        .analyse(&case.id, &case.text, &views)
        .with_context(context)
}

/// `f` of every item, on up to `jobs` threads, in the items' order.
fn map_in_order<T: Sync, R: Send>(jobs: usize, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if jobs <= 1 || items.len() <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs.min(items.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break out };
                        out.push((i, f(item)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Cases taken from the input per thread before their results are written:
/// enough to keep every thread busy, few enough that memory stays flat.
const CASES_PER_JOB: usize = 32;

pub fn run(options: &PredictArgs) -> Result<u8> {
    let input = read_input(options)?;
    let engine = engine(options, &input)?;
    let jobs = usize::from(options.jobs);
    let mut out = open_output(options.output.as_deref())?;
    let (mut written, mut skipped) = (0usize, 0usize);
    let mut write = |cases: &mut Vec<Result<Case, String>>| -> Result<()> {
        for analysed in map_in_order(jobs, cases, |case| analyse(&engine, case)) {
            match analysed {
                Ok(case) => {
                    if let Some(note) = &case.note {
                        eprintln!("note: case {}: {note}", case.id);
                    }
                    serde_json::to_writer(&mut out, &engine.prediction(case, options.scores))?;
                    out.write_all(b"\n")?;
                    written += 1;
                }
                Err(e) => {
                    eprintln!("warning: {e:#}; skipped");
                    skipped += 1;
                }
            }
        }
        cases.clear();
        Ok(())
    };
    let mut pending = Vec::with_capacity(jobs * CASES_PER_JOB);
    let skipped_before = input.each(|case| {
        pending.push(case);
        if pending.len() == jobs * CASES_PER_JOB {
            write(&mut pending)?;
        }
        Ok(())
    })?;
    write(&mut pending)?;
    out.flush()?;
    drop(out);
    skipped += skipped_before;
    if written == 0 {
        if let Some(path) = &options.output {
            // Only the empty file this run created: no half-written output.
            let _ = std::fs::remove_file(path);
        }
        bail!("nothing was written: no case of the input could be analysed ({skipped} skipped)");
    }
    Ok(if skipped > 0 { EXIT_PARTIAL } else { EXIT_OK })
}
