//! `integrabner report`: train, evaluate and export the report model.

use crate::eval::{counts_cells, gold_labels};
use crate::training::TrainArgs;
use crate::{read_split_file, source, EXIT_OK};
use anyhow::{Context, Result};
use clap::Subcommand;
use integrabner_core::calibration::{
    best_threshold, expected_calibration_error, fit_temperature, rescale,
};
use integrabner_core::doc::Doc;
use integrabner_core::metrics::{MultiLabelEval, Prf};
use integrabner_core::split::Split;
use integrabner_core::{Prediction, RulePipeline};
use integrabner_models::report::ReportTagger;
use integrabner_train::export;
use integrabner_train::report::{self, LabelledReport, ReportOutput};
use integrabner_train::trainer::TrainConfig;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;
use std::path::PathBuf;

/// Where the report model learns from.
#[derive(clap::Args, Clone)]
pub struct ReportData {
    /// OpenI reports (.tgz, XML directory or indiana_reports.csv).
    #[arg(long, default_value = "../shared/data/openi/NLMCXR_reports.tgz")]
    pub source: PathBuf,
    /// Silver annotations from `integrabner label --ner-disease … --ner-anatomy …`
    /// (at least for the splits the command reads spans from).
    #[arg(long, default_value = "runs/silver.jsonl")]
    pub silver: PathBuf,
    #[arg(long, default_value = "data/splits/openi-split-v1.tsv")]
    pub split_file: PathBuf,
}

impl ReportData {
    /// The reports of each split with their gold coding, and their silver
    /// spans; a report of a split in `spans_of` must have them (the others
    /// get none; with no such split the silver file is not read).
    pub fn load(
        &self,
        rules: &RulePipeline,
        spans_of: &[Split],
    ) -> Result<HashMap<Split, Vec<LabelledReport>>> {
        let corpus = source::load_corpus(&self.source, None)?;
        let assigned = read_split_file(&self.split_file)?;
        let mut silver = HashMap::new();
        if !spans_of.is_empty() {
            let text = std::fs::read_to_string(&self.silver)
                .with_context(|| format!("cannot read {}", self.silver.display()))?;
            for (i, line) in text.lines().enumerate() {
                let p: Prediction = serde_json::from_str(line)
                    .with_context(|| format!("{}: line {}", self.silver.display(), i + 1))?;
                silver.insert(p.id, p.entities);
            }
        }
        let mut out: HashMap<Split, Vec<LabelledReport>> = HashMap::new();
        for r in &corpus.reports {
            let split = *assigned
                .get(&r.id)
                .with_context(|| format!("report {} is not in the split file", r.id))?;
            let entities = match silver.get(&r.id) {
                Some(e) => e.clone(),
                None if !spans_of.contains(&split) => Vec::new(),
                None => anyhow::bail!(
                    "report {} ({} split) has no silver annotations in {}; label that split with `integrabner label`",
                    r.id,
                    split.as_str(),
                    self.silver.display()
                ),
            };
            out.entry(split).or_default().push(LabelledReport {
                id: r.id.clone(),
                text: r.text(),
                silver: entities,
                gold: gold_labels(r, &rules.vocab),
            });
        }
        Ok(out)
    }
}

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Fine-tune a BERT checkpoint into the report model (tags, assertions,
    /// coded findings) on the train split; early stopping on validation.
    ///
    /// Writes the best model to OUT/best and a resumable state to OUT/state:
    /// run the same command again to continue an interrupted run.
    Train {
        #[command(flatten)]
        data: ReportData,
        /// Starting checkpoint directory; see scripts/fetch-minilm.
        #[arg(long, default_value = "weights/all-MiniLM-L6-v2")]
        base: PathBuf,
        #[arg(long, default_value = "runs/report")]
        out: PathBuf,
        /// Keep only the base's bottom N encoder layers: a smaller, faster
        /// model (3 of all-MiniLM-L6-v2's 6 halves the encoder's work).
        #[arg(long)]
        layers: Option<usize>,
        /// Keep only N feed-forward neurons per layer, the strongest by weight
        /// norms (all-MiniLM-L6-v2 has 1536; 768 leaves two thirds of the
        /// encoder's work at the same depth).
        #[arg(long, value_name = "N")]
        feed_forward_width: Option<usize>,
        /// Weight of the coded-findings loss beside the tag and assertion losses.
        #[arg(long, default_value_t = report::FINDINGS_WEIGHT)]
        findings_weight: f64,
        /// Distil a trained report model (a training output or a bundle such
        /// as models/text): the findings targets become a mix of its
        /// probabilities and the manual coding.
        #[arg(long)]
        teacher: Option<PathBuf>,
        /// The teacher's weight in each findings target (0 to 1).
        #[arg(long, default_value_t = 0.5, requires = "teacher")]
        teacher_share: f32,
        #[command(flatten)]
        training: TrainArgs,
    },
    /// Score a report model on a split: entities against the silver spans,
    /// assertions, and coded findings against the manual MeSH coding for the
    /// rule labeler, the model on text alone and the model with the rules'
    /// evidence; calibration, per-concept scores and the most frequent errors.
    Eval {
        #[command(flatten)]
        data: ReportData,
        /// A training output (runs/report/best) or a bundle (models/text).
        #[arg(long, default_value = "models/text")]
        model: PathBuf,
        /// Develop on validation; look at test once.
        #[arg(long, value_enum, default_value = "validation")]
        split: crate::SplitArg,
        /// Also write the tables as Markdown to this file.
        #[arg(long)]
        markdown: Option<PathBuf>,
    },
    /// Quantize a trained model (Q8_0) into a bundle directory, fit its
    /// temperature and decision threshold on the validation split, and record
    /// its test scores (quantized and f32) in the directory's manifest.
    Export {
        #[command(flatten)]
        data: ReportData,
        #[arg(long, default_value = "runs/report/best")]
        model: PathBuf,
        #[arg(long, default_value = "models/text")]
        out: PathBuf,
        /// Where the model came from, for the manifest.
        #[arg(long)]
        provenance: String,
    },
}

pub fn run(command: ReportCommand) -> Result<u8> {
    match command {
        ReportCommand::Train {
            data,
            base,
            out,
            layers,
            feed_forward_width,
            findings_weight,
            teacher,
            teacher_share,
            training,
        } => {
            let rules = RulePipeline::embedded();
            let mut splits = data.load(&rules, &[Split::Train, Split::Validation])?;
            let mut train = splits.remove(&Split::Train).unwrap_or_default();
            if let Some(n) = training.limit {
                train.truncate(n);
            }
            let dev = splits.remove(&Split::Validation).unwrap_or_default();
            let config = training.config(TrainConfig {
                max_len: report::MAX_LEN,
                stride: report::STRIDE,
                ..TrainConfig::default()
            });
            eprintln!(
                "{} train reports, {} validation reports",
                train.len(),
                dev.len()
            );
            let teacher = teacher.as_deref().map(report::load_tagger).transpose()?;
            crate::training::run_interruptibly(&out, |keep_going| {
                let recipe = report::Recipe {
                    base: &base,
                    layers,
                    feed_forward_width,
                    findings_weight,
                    teacher: teacher.as_ref().map(|model| report::Teacher {
                        model,
                        share: teacher_share,
                    }),
                };
                report::train(recipe, &rules, &train, &dev, &out, config, keep_going)
            })
        }
        ReportCommand::Eval {
            data,
            model,
            split,
            markdown,
        } => {
            let rules = RulePipeline::embedded();
            let wanted: Vec<Split> = [Split::Train, Split::Validation, Split::Test]
                .into_iter()
                .filter(|s| split.includes(*s))
                .collect();
            let splits = data.load(&rules, &wanted)?;
            let tagger = report::load_tagger(&model)?;
            tagger.check_rules(&rules)?;
            let reports: Vec<LabelledReport> = splits
                .iter()
                .filter(|(s, _)| split.includes(**s))
                .flat_map(|(_, r)| r.iter().cloned())
                .collect();
            let train = splits.get(&Split::Train).map_or(&[][..], Vec::as_slice);
            let md = evaluation_markdown(&tagger, &rules, &reports, train, split.name())?;
            crate::print_markdown(&md, markdown.as_deref())
        }
        ReportCommand::Export {
            data,
            model,
            out,
            provenance,
        } => {
            let rules = RulePipeline::embedded();
            let splits = data.load(&rules, &[Split::Validation, Split::Test])?;
            let part = |s| splits.get(&s).map_or(&[][..], Vec::as_slice);
            export::write_model_files(&model, &out)?;
            let mut quantized = report::load_tagger(&out)?;
            let (temperature, threshold) =
                calibrate(&mut quantized, &rules, part(Split::Validation))?;
            let config_path = out.join("config.json");
            let mut config = quantized.config.clone();
            config.temperature = temperature as f32;
            config.threshold = threshold;
            std::fs::write(&config_path, serde_json::to_string_pretty(&config)?)?;
            eprintln!("validation: temperature {temperature:.2}, threshold {threshold:.2}");

            let mut metrics = BTreeMap::new();
            let test = part(Split::Test);
            for (name, dir) in [("q8", &out), ("f32", &model)] {
                let mut tagger = report::load_tagger(dir)?;
                tagger.config.temperature = config.temperature;
                tagger.config.threshold = config.threshold;
                let (scores, outputs) = report::evaluate(&tagger, &rules, test, true)?;
                let prefix = if name == "q8" {
                    String::new()
                } else {
                    format!("{name} ")
                };
                metrics.insert(format!("{prefix}test span-f1"), scores.spans.f1());
                metrics.insert(
                    format!("{prefix}test findings micro-f1"),
                    scores.findings.micro().f1,
                );
                metrics.insert(
                    format!("{prefix}test findings macro-f1"),
                    scores.findings.macro_supported().f1,
                );
                if name == "q8" {
                    metrics.insert(
                        "test findings ece".into(),
                        expected_calibration_error(&probability_pairs(&tagger, test, &outputs), 10),
                    );
                }
                eprintln!(
                    "test ({name}): span F1 {:.4}, findings micro-F1 {:.4}, macro-F1 {:.4}",
                    scores.spans.f1(),
                    scores.findings.micro().f1,
                    scores.findings.macro_supported().f1
                );
            }
            crate::export::write_model_manifest(
                &out,
                &integrabner_core::bundle::TEXT_MODEL_FILES,
                &provenance,
                metrics,
            )?;
            Ok(EXIT_OK)
        }
    }
}

/// (probability, coded by hand) for every report and concept of the model.
fn probability_pairs(
    tagger: &ReportTagger,
    reports: &[LabelledReport],
    outputs: &[ReportOutput],
) -> Vec<(f32, bool)> {
    reports
        .iter()
        .zip(outputs)
        .flat_map(|(r, o)| {
            tagger
                .config
                .concepts
                .iter()
                .zip(&o.probabilities)
                .map(|(c, &p)| (p, r.gold.contains(c)))
        })
        .collect()
}

/// Temperature and threshold fitted on `validation` (model with rule evidence).
fn calibrate(
    tagger: &mut ReportTagger,
    rules: &RulePipeline,
    validation: &[LabelledReport],
) -> Result<(f64, f32)> {
    tagger.config.temperature = 1.0;
    let (_, outputs) = report::evaluate(tagger, rules, validation, true)?;
    let pairs = probability_pairs(tagger, validation, &outputs);
    let temperature = fit_temperature(&pairs);
    let rescaled: Vec<(f32, bool)> = pairs
        .iter()
        .map(|&(p, y)| (rescale(p, temperature), y))
        .collect();
    Ok((temperature, best_threshold(&rescaled)))
}

fn prf_cells(p: Prf) -> String {
    format!("{:.3} | {:.3} | {:.3}", p.precision, p.recall, p.f1)
}

/// The sentence of `text` around char offset `at`, on one line.
fn sentence_at(doc: &Doc, at: usize) -> String {
    doc.sentences
        .iter()
        .find(|s| {
            let chars = doc.char_range(s);
            chars.start <= at && at < chars.end
        })
        .map(|s| {
            doc.token_text(s)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The most frequent span errors: silver spans the model missed and model
/// spans the silver lacks, by (lower-cased text, label), with how many of
/// each a boundary overlap would explain.
fn span_errors_markdown(reports: &[LabelledReport], outputs: &[ReportOutput]) -> String {
    let mut counts: BTreeMap<(&str, String, String), (usize, usize)> = BTreeMap::new();
    for (r, o) in reports.iter().zip(outputs) {
        let key = |e: &integrabner_core::Entity| (e.start, e.end, e.label);
        let gold: BTreeSet<_> = r.silver.iter().map(key).collect();
        let found: BTreeSet<_> = o.prediction.entities.iter().map(key).collect();
        for (kind, mine, theirs, all) in [
            ("missed", &r.silver, &found, &o.prediction.entities),
            ("spurious", &o.prediction.entities, &gold, &r.silver),
        ] {
            for e in mine.iter().filter(|e| !theirs.contains(&key(e))) {
                let overlaps = all.iter().any(|x| x.start < e.end && e.start < x.end);
                let c = counts
                    .entry((kind, e.text.to_lowercase(), format!("{:?}", e.label)))
                    .or_default();
                c.0 += 1;
                c.1 += usize::from(overlaps);
            }
        }
    }
    let mut rows: Vec<_> = counts.into_iter().collect();
    rows.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then_with(|| a.0.cmp(&b.0)));
    let mut s = String::from("The 15 most frequent span errors (text, label; \"overlapping\": the other side has a span that overlaps it, i.e. a boundary or label disagreement):\n\n| error | text | label | count | overlapping |\n|---|---|---|---|---|\n");
    for ((kind, text, label), (n, overlapping)) in rows.into_iter().take(15) {
        let _ = writeln!(s, "| {kind} | {text} | {label} | {n} | {overlapping} |");
    }
    s.push('\n');
    s
}

/// The evaluation of the report model on `reports` as Markdown.
fn evaluation_markdown(
    tagger: &ReportTagger,
    rules: &RulePipeline,
    reports: &[LabelledReport],
    train: &[LabelledReport],
    split: &str,
) -> Result<String> {
    let (with_rules, outputs) = report::evaluate(tagger, rules, reports, true)?;
    let (text_only, _) = report::evaluate(tagger, rules, reports, false)?;
    let mut rule_eval = MultiLabelEval::default();
    for r in reports {
        let p = rules.predict(&r.id, &r.text)?;
        let found: BTreeSet<String> = p.findings.into_iter().map(|f| f.concept).collect();
        rule_eval.add(&r.gold, &found);
    }

    let mut s = String::new();
    let sp = &with_rules.spans;
    let _ = writeln!(
        s,
        "Split `{split}`, {} reports. Model: temperature {:.2}, threshold {:.2}.\n",
        reports.len(),
        tagger.config.temperature,
        tagger.config.threshold
    );
    s.push_str("Entities, strict (same boundaries and label) against the silver spans:\n\n| silver | predicted | correct | precision | recall | F1 |\n|---|---|---|---|---|---|\n");
    let _ = writeln!(
        s,
        "| {} | {} | {} | {:.3} | {:.3} | {:.3} |",
        sp.true_positives + sp.false_negatives,
        sp.true_positives + sp.false_positives,
        sp.true_positives,
        sp.precision(),
        sp.recall(),
        sp.f1()
    );
    let _ = writeln!(
        s,
        "\nAssertion agrees with the silver assertion on {} of {} exact spans ({:.3}).\n",
        with_rules.assertion_correct,
        sp.true_positives,
        with_rules.assertion_correct as f64 / sp.true_positives.max(1) as f64
    );
    s.push_str(&span_errors_markdown(reports, &outputs));
    s.push_str("Coded findings against the manual MeSH coding:\n\n| system | micro P | micro R | micro F1 | macro P | macro R | macro F1 |\n|---|---|---|---|---|---|---|\n");
    for (name, e) in [
        ("rule labeler", &rule_eval),
        ("report model, text only", &text_only.findings),
        ("report model + rule evidence", &with_rules.findings),
    ] {
        let _ = writeln!(
            s,
            "| {name} | {} | {} |",
            prf_cells(e.micro()),
            prf_cells(e.macro_supported())
        );
    }
    let pairs = probability_pairs(tagger, reports, &outputs);
    let raw: Vec<(f32, bool)> = pairs
        .iter()
        .map(|&(p, y)| (rescale(p, 1.0 / f64::from(tagger.config.temperature)), y))
        .collect();
    let _ = writeln!(
        s,
        "\nCalibration (model + rule evidence, every report x concept, 10 bins): ECE {:.4} at temperature 1, {:.4} at the fitted temperature {:.2}.",
        expected_calibration_error(&raw, 10),
        expected_calibration_error(&pairs, 10),
        tagger.config.temperature
    );

    s.push_str("\nPer concept (model + rule evidence; support = gold reports):\n\n| concept | support | TP | FP | FN | P | R | F1 |\n|---|---|---|---|---|---|---|---|\n");
    let mut concepts: Vec<_> = with_rules.findings.per_label.iter().collect();
    concepts.sort_by(|a, b| b.1.support().cmp(&a.1.support()).then(a.0.cmp(b.0)));
    for (name, c) in &concepts {
        let _ = writeln!(s, "| {name} | {} |", counts_cells(c));
    }

    // The most frequent (concept, error) pairs, each with one sentence.
    let mut errors: BTreeMap<(String, &str), (usize, String)> = BTreeMap::new();
    for (r, o) in reports.iter().zip(&outputs) {
        let predicted: BTreeSet<&String> =
            o.prediction.findings.iter().map(|f| &f.concept).collect();
        let doc = rules.doc(&r.text)?;
        let example = |concept: &str| {
            let mention = o
                .prediction
                .entities
                .iter()
                .find(|e| e.concept.as_deref() == Some(concept))
                .map(|e| e.start)
                .or_else(|| {
                    doc.spans
                        .iter()
                        .find(|sp| {
                            sp.concept
                                .is_some_and(|c| rules.vocab.concept(c).heading == concept)
                        })
                        .map(|sp| sp.start)
                });
            let sentence = mention.map_or_else(
                || "(no mention the vocabulary links to this concept)".to_string(),
                |at| sentence_at(&doc, at),
            );
            format!("{}: {}", r.id, sentence.replace('|', "/"))
        };
        for c in predicted.iter().filter(|c| !r.gold.contains(c.as_str())) {
            let e = errors
                .entry(((*c).clone(), "false positive"))
                .or_insert((0, example(c)));
            e.0 += 1;
        }
        for c in r.gold.iter().filter(|c| !predicted.contains(c)) {
            let e = errors
                .entry((c.clone(), "false negative"))
                .or_insert((0, example(c)));
            e.0 += 1;
        }
    }
    let mut ranked: Vec<_> = errors.into_iter().collect();
    ranked.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));
    s.push_str("\nThe 20 most frequent errors (model + rule evidence), each with its first report and sentence:\n\n| concept | error | reports | first example (report: sentence) |\n|---|---|---|---|\n");
    for ((concept, kind), (n, example)) in ranked.into_iter().take(20) {
        let _ = writeln!(s, "| {concept} | {kind} | {n} | {example} |");
    }

    let mut train_support: BTreeMap<&str, usize> = BTreeMap::new();
    for r in train {
        for c in &r.gold {
            *train_support.entry(c.as_str()).or_default() += 1;
        }
    }
    let rare: Vec<String> = tagger
        .config
        .concepts
        .iter()
        .map(|c| (c, train_support.get(c.as_str()).copied().unwrap_or(0)))
        .filter(|&(_, n)| n < 5)
        .map(|(c, n)| format!("{c} ({n})"))
        .collect();
    let _ = writeln!(
        s,
        "\nRare concepts: {} of {} vocabulary concepts are coded in fewer than 5 train reports: {}.",
        rare.len(),
        tagger.config.concepts.len(),
        rare.join(", ")
    );
    Ok(s)
}
