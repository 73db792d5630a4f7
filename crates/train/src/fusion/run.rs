//! The whole `fusion train` run: the report model's logits and the image
//! model's cached features of every split, the examples built from them,
//! training, per-concept thresholds on the validation pairs, the written
//! model, and its scores on validation and test.

use super::data::{labels_of, split_data};
use super::eval::evaluate;
use super::{Example, FusionTraining};
use crate::image::run::grey_layout_key;
use crate::image::{of_split, Heads};
use crate::progress;
use crate::report::data::ReportSources;
use crate::report::{load_tagger, LabelledReport};
use crate::source::{load_corpus, read_nih_images, read_views, OpenIImages};
use anyhow::{Context, Result};
use candle_core::Device;
use integrabner_core::bundle::{sha256_hex, FUSION_MODEL_FILES};
use integrabner_core::nih::NihImage;
use integrabner_core::split::Split;
use integrabner_core::RulePipeline;
use integrabner_models::fusion::{fusion_input, FusionConfig, FusionTagger};
use integrabner_models::image_model::{ImageModelConfig, ImageTagger};
use integrabner_models::report::ReportTagger;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

const PROVENANCE: &str = "Fusion model of IntegraBNER: two-token attention over the report \
model's finding logits and EfficientNet-Lite0 pooled features, learned missing-modality tokens, \
gated pass-through of both models' logits, per-concept thresholds; trained by `integrabner fusion \
train` on OpenI reports (train split), NIH ChestX-ray14 images (train split) and label-matched \
constructed pairs, with modality dropout.";

/// The report model's calibrated finding logits of every report, from a
/// cache that names the model's weights by hash (about 2 minutes to compute).
fn cached_text_logits(
    report_model: &ReportTagger,
    text_model: &Path,
    rules: &RulePipeline,
    by_split: &HashMap<Split, Vec<LabelledReport>>,
    cache: &Path,
) -> Result<HashMap<String, Vec<f32>>> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Cache {
        model: String,
        logits: HashMap<String, Vec<f32>>,
    }
    let weights = std::fs::read(text_model.join("model.gguf"))
        .or_else(|_| std::fs::read(text_model.join("model.safetensors")))
        .with_context(|| format!("no weights in {}", text_model.display()))?;
    // The version names what the cache holds: reports by uId, logits as
    // fusion reads them.
    let model = format!("text-logits-v2:{}", sha256_hex(&weights));
    if let Some(c) = std::fs::read(cache)
        .ok()
        .and_then(|b| serde_json::from_slice::<Cache>(&b).ok())
        .filter(|c| c.model == model)
    {
        eprintln!("report model logits from {}", cache.display());
        return Ok(c.logits);
    }
    let count: usize = by_split.values().map(Vec::len).sum();
    let progress = progress::bar(count, "report model logits", "reports");
    let mut logits = HashMap::new();
    for r in by_split.values().flatten() {
        match report_model.analyse(rules, &r.text, true) {
            Ok(a) => {
                logits.insert(
                    r.id.clone(),
                    a.logits
                        .iter()
                        .map(|&l| fusion_input(l))
                        .collect::<Vec<f32>>(),
                );
            }
            Err(e) => eprintln!("note: report {} has no text input: {e}", r.id),
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    std::fs::write(
        cache,
        serde_json::to_vec(&Cache {
            model,
            logits: logits.clone(),
        })?,
    )?;
    Ok(logits)
}

/// Where `fusion train` reads its inputs.
pub struct FusionSources<'a> {
    /// OpenI reports (`.tgz`, XML directory or `indiana_reports.csv`).
    pub reports: &'a Path,
    pub split_file: &'a Path,
    /// The report model whose finding logits are the text input.
    pub text_model: &'a Path,
    /// An `image train` output: cached pooled features of every NIH split,
    /// the head and its config.
    pub image_run: &'a Path,
    /// NIH ChestX-ray14 (its labels are the image side's targets).
    pub nih: &'a Path,
    /// The OpenI images, when the user has them: each report with its own
    /// images becomes a real pair.
    pub openi_images: Option<&'a Path>,
    /// The image model that reads the OpenI images.
    pub image_model: &'a Path,
}

/// Trains the fusion model, writes it to `out` (config, weights, manifest)
/// and returns the Markdown of its validation and test scores.
#[allow(clippy::too_many_lines)]
pub fn train_and_write(
    sources: &FusionSources,
    out: &Path,
    settings: FusionTraining,
) -> Result<String> {
    let FusionSources {
        reports,
        split_file,
        text_model,
        image_run,
        nih,
        openi_images,
        image_model,
    } = *sources;
    let rules = RulePipeline::embedded();
    let report_model = load_tagger(text_model)?;
    let concepts = report_model.config.concepts.clone();
    let image_config: ImageModelConfig = serde_json::from_slice(
        &std::fs::read(image_run.join("config.json"))
            .with_context(|| format!("cannot read {}/config.json", image_run.display()))?,
    )?;
    let shared: BTreeSet<String> = image_config
        .outputs
        .iter()
        .filter(|o| concepts.contains(o))
        .cloned()
        .collect();
    let image_known: Vec<f32> = concepts
        .iter()
        .map(|c| f32::from(u8::from(shared.contains(c))))
        .collect();

    let by_split = ReportSources {
        reports,
        split_file,
        silver: Path::new(""),
    }
    .load(&rules, &[])?;
    let text_logits = cached_text_logits(
        &report_model,
        text_model,
        &rules,
        &by_split,
        &image_run.join("fusion-text-logits.json"),
    )?;

    // Images: cached pooled features and the head's logits.
    let nih_images = read_nih_images(nih)?;
    let cache = image_run.join("features.safetensors");
    let cached = candle_core::safetensors::load(&cache, &Device::Cpu).with_context(|| {
        format!(
            "cannot read {}; run `integrabner image train`",
            cache.display()
        )
    })?;
    let head_file = image_run.join("head.safetensors");
    let heads = Heads::from_tensors(
        &candle_core::safetensors::load(&head_file, &Device::Cpu)
            .with_context(|| format!("cannot read {}", head_file.display()))?,
        image_config.grey_layout.as_ref(),
    )?;
    let image_inputs = |name: &str| -> Result<Vec<(Vec<f32>, Vec<f32>)>> {
        let get = |key: &str| {
            cached
                .get(key)
                .with_context(|| format!("{} has no {key} features", cache.display()))
        };
        let (x, layouts) = (get(name)?, get(&grey_layout_key(name))?);
        Ok(x.to_vec2::<f32>()?
            .into_iter()
            .zip(heads.logits(x, layouts)?.to_vec2::<f32>()?)
            .collect())
    };
    let empty = Vec::new();
    let make = |split: Split,
                images: &[&NihImage],
                features: &[(Vec<f32>, Vec<f32>)],
                per_image: usize| {
        split_data(
            split,
            by_split.get(&split).unwrap_or(&empty),
            &text_logits,
            images,
            features,
            &concepts,
            &shared,
            &image_known,
            per_image,
        )
    };
    // The mirrored copies' features follow the originals', so the train
    // images are listed twice.
    let train_features = [image_inputs("train")?, image_inputs("train_mirrored")?].concat();
    let train_images = of_split(&nih_images, Split::Train).repeat(2);
    let mut train_set = make(Split::Train, &train_images, &train_features, 2);
    let mut validation = make(
        Split::Validation,
        &of_split(&nih_images, Split::Validation),
        &image_inputs("validation")?,
        1,
    );
    let mut test = make(
        Split::Test,
        &of_split(&nih_images, Split::Test),
        &image_inputs("test")?,
        1,
    );
    if let Some(dir) = openi_images {
        let image_model = ImageTagger::from_bytes(
            &std::fs::read(image_model.join("config.json"))
                .with_context(|| format!("cannot read {}/config.json", image_model.display()))?,
            &std::fs::read(image_model.join("model.gguf"))
                .with_context(|| format!("cannot read {}/model.gguf", image_model.display()))?,
        )?;
        let files = OpenIImages::open(dir)?;
        let corpus = load_corpus(reports, None)?;
        let views: HashMap<&str, Vec<PathBuf>> = corpus
            .reports
            .iter()
            .map(|r| (r.id.as_str(), files.views(&r.images)))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        for (split, set) in [
            (Split::Train, &mut train_set),
            (Split::Validation, &mut validation),
            (Split::Test, &mut test),
        ] {
            for r in by_split.get(&split).unwrap_or(&empty) {
                let (Some(paths), Some(text)) = (views.get(r.id.as_str()), text_logits.get(&r.id))
                else {
                    continue;
                };
                let analysis = image_model.analyse(read_views(paths)?.iter().map(|r| &r.image))?;
                set.real.push(Example {
                    text: Some(text.clone()),
                    image: Some((
                        analysis.features.clone(),
                        analysis.logits.iter().map(|&l| fusion_input(l)).collect(),
                    )),
                    labels: labels_of(&concepts, &r.gold),
                    mask: vec![1.0; concepts.len()],
                });
                set.real_gold.push(r.gold.clone());
            }
            eprintln!(
                "{}: {} reports with their own images",
                split.as_str(),
                set.real.len()
            );
        }
    }

    let config = FusionConfig {
        concepts: concepts.clone(),
        image_outputs: image_config.outputs.clone(),
        image_features: train_features[0].0.len(),
        width: 64,
        heads: 4,
        thresholds: vec![0.5; concepts.len()],
        vocabulary_version: report_model.config.vocabulary_version.clone(),
    };
    let train_examples = [
        train_set.reports.clone(),
        train_set.images.clone(),
        train_set.pairs.clone(),
        train_set.real.clone(),
    ]
    .concat();
    let val_pairs = [validation.pairs.clone(), validation.real.clone()].concat();
    let val_examples = [
        validation.reports.clone(),
        validation.images.clone(),
        val_pairs.clone(),
    ]
    .concat();
    let started = std::time::Instant::now();
    let trained = super::train(
        &config,
        &train_examples,
        &val_examples,
        &image_known,
        settings,
    )?;
    eprintln!(
        "trained: {} epochs (best {}, validation loss {:.4}) in {:.0} s",
        trained.epochs,
        trained.best_epoch,
        trained.validation_loss,
        started.elapsed().as_secs_f64()
    );

    // Thresholds on the validation pairs (fusion serves cases with both a
    // report and an image), then write and reload the written model.
    let fitted = FusionTagger::from_tensors(config.clone(), trained.tensors.clone())?;
    let scored: Vec<bool> = image_known.iter().map(|&k| k > 0.0).collect();
    let (thresholds, fitted_f1, fixed_f1) = super::choose_thresholds(
        &super::probabilities(&fitted.model, &val_pairs)?,
        &val_pairs,
        report_model.config.threshold,
        &scored,
    );
    eprintln!(
        "thresholds: per concept {fitted_f1:.4} vs the report model's {:.2} everywhere {fixed_f1:.4} (two folds of the validation pairs); using {}",
        report_model.config.threshold,
        if fitted_f1 > fixed_f1 { "per concept" } else { "the report model's" }
    );
    let config = FusionConfig {
        thresholds,
        ..config
    };
    std::fs::create_dir_all(out)?;
    let config_json = serde_json::to_string_pretty(&config)?;
    let gguf = integrabner_models::quantized::to_gguf(&trained.tensors, &[])?;
    std::fs::write(out.join("config.json"), &config_json)?;
    std::fs::write(out.join("model.gguf"), &gguf)?;
    let written = FusionTagger::from_bytes(config_json.as_bytes(), &gguf)?;

    let (validation_md, _) = evaluate(
        &written,
        report_model.config.threshold,
        &image_config,
        &validation,
        "validation",
    )?;
    let (test_md, metrics) = evaluate(
        &written,
        report_model.config.threshold,
        &image_config,
        &test,
        "test",
    )?;
    crate::export::write_manifest(out, &FUSION_MODEL_FILES, PROVENANCE, metrics)?;
    Ok(format!("{validation_md}\n{test_md}"))
}
