//! `image train`: features of every NIH set (cached), the two heads,
//! thresholds on validation, and the test evaluation with intervals.

use super::View;
use crate::nih_eval::{abnormal_index, by_source_resolution, source_resolution_table, AucEstimate};
use crate::progress;
use crate::source::read_nih_images;
use anyhow::{Context, Result};
use integrabner_core::calibration::{best_threshold, f1_at};
use integrabner_core::nih::NihImage;
use integrabner_core::split::Split;
use integrabner_models::encoder::EncoderConfig;
use integrabner_models::image_model::ImageModelConfig;
use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;

/// The cache's record of the input size its features were computed at.
const INPUT_SIZE_KEY: &str = "input_size";

/// The feature sets `image train` computes: a name in the cache, its
/// images, and how each is shown to the encoder.
fn feature_sets<'a>(
    nih: &Path,
    images: &'a [NihImage],
) -> Result<Vec<(&'static str, Vec<&'a NihImage>, View)>> {
    let train = super::of_split(images, Split::Train);
    Ok(vec![
        (
            "train_thumbnails",
            super::larger_than_thumbnail(nih, &train)?,
            View::Thumbnail,
        ),
        ("train_mirrored", train.clone(), View::Mirrored),
        ("train", train, View::Original),
        (
            "validation",
            super::of_split(images, Split::Validation),
            View::Original,
        ),
        ("test", super::of_split(images, Split::Test), View::Original),
    ])
}

/// The cache's name of a set's grey-level layouts (beside its features).
pub fn grey_layout_key(set: &str) -> String {
    format!("{set}_grey_layout")
}

/// Features and grey-level layouts of every set at `input_size`, from the
/// cache when it describes these images at that size and width.
fn cached_features(
    nih: &Path,
    config: &EncoderConfig,
    weights: &Path,
    sets: &[(&str, Vec<&NihImage>, View)],
    input_size: usize,
    cache: &Path,
) -> Result<HashMap<String, candle_core::Tensor>> {
    if let Ok(t) = candle_core::safetensors::load(cache, &candle_core::Device::Cpu) {
        let same_size = t
            .get(INPUT_SIZE_KEY)
            .and_then(|x| x.to_vec1::<u32>().ok())
            .is_some_and(|v| v == [input_size as u32]);
        let cells = super::grey_layout_side(input_size).pow(2);
        let has = |name: &str, dims: (usize, usize)| {
            t.get(name)
                .and_then(|x| x.dims2().ok())
                .is_some_and(|d| d == dims)
        };
        let fits = same_size
            && sets.iter().all(|(name, part, _)| {
                has(name, (part.len(), config.features()))
                    && has(&grey_layout_key(name), (part.len(), cells))
            });
        if fits {
            eprintln!("features from {}", cache.display());
            return Ok(t);
        }
    }
    let encoder = super::load_encoder(config, weights)?;
    let mut out = HashMap::new();
    for (name, part, view) in sets {
        let progress = progress::bar(part.len(), &format!("features, {name}"), "images");
        let started = std::time::Instant::now();
        let (features, layouts) =
            super::features(&encoder, nih, part, *view, input_size, &progress)?;
        out.insert(name.to_string(), features);
        out.insert(grey_layout_key(name), layouts);
        progress.finish_and_clear();
        eprintln!(
            "features, {name}: {} images in {:.0} s",
            part.len(),
            started.elapsed().as_secs_f64()
        );
    }
    out.insert(
        INPUT_SIZE_KEY.to_string(),
        candle_core::Tensor::new(&[input_size as u32], &candle_core::Device::Cpu)?,
    );
    candle_core::safetensors::save(&out, cache)?;
    Ok(out)
}

/// What `image train` trains on and where it writes.
pub struct HeadsRun<'a> {
    /// Directory with `labels.csv` and the images it names.
    pub nih: &'a Path,
    pub encoder: &'a EncoderConfig,
    /// The encoder's name in the evaluation's first line.
    pub encoder_name: &'a str,
    /// The encoder's ImageNet weights.
    pub weights: &'a Path,
    /// Side of the square input, in pixels.
    pub input_size: usize,
    /// Features cache, model (`config.json`, `head.safetensors`) and
    /// `evaluation.md`.
    pub out: &'a Path,
}

/// Trains the heads over cached features, chooses thresholds on
/// validation, writes the model and the test evaluation, and returns the
/// evaluation's Markdown.
#[allow(clippy::too_many_lines)]
pub fn train_heads_and_evaluate(run: &HeadsRun) -> Result<String> {
    let HeadsRun {
        nih,
        encoder: encoder_config,
        encoder_name,
        weights,
        input_size,
        out,
    } = *run;
    let images = read_nih_images(nih)?;
    std::fs::create_dir_all(out)?;
    let started = std::time::Instant::now();
    let sets = feature_sets(nih, &images)?;
    let features = cached_features(
        nih,
        encoder_config,
        weights,
        &sets,
        input_size,
        &out.join("features.safetensors"),
    )?;
    let feature_seconds = started.elapsed().as_secs_f64();
    let outputs = super::outputs();
    let y: HashMap<&str, Vec<Vec<f32>>> = sets
        .iter()
        .map(|(name, part, _)| {
            let targets = part.iter().map(|i| super::targets(i, &outputs)).collect();
            (*name, targets)
        })
        .collect();
    // Every train set (originals and augmented views) trains the head.
    let train_sets: Vec<&str> = sets
        .iter()
        .map(|s| s.0)
        .filter(|name| name.starts_with("train"))
        .collect();
    let train_y: Vec<Vec<f32>> = train_sets.iter().flat_map(|n| y[n].clone()).collect();
    let stack = |key: &dyn Fn(&str) -> String| {
        let parts: Vec<&candle_core::Tensor> =
            train_sets.iter().map(|n| &features[&key(n)]).collect();
        candle_core::Tensor::cat(&parts, 0)
    };
    let train_x = stack(&|n| n.to_string())?;
    let train_layouts = stack(&grey_layout_key)?;
    let of_set = |name: &str| (&features[name], &features[&grey_layout_key(name)]);
    let (val_y, test_y) = (&y["validation"], &y["test"]);
    let started = std::time::Instant::now();
    let (heads, [image_training, layout_training], validation_auc) = super::train_heads(
        super::grey_layout_side(input_size),
        (&train_x, &train_layouts),
        &train_y,
        of_set("validation"),
        val_y,
    )?;
    let head_seconds = started.elapsed().as_secs_f64();

    let probabilities = |name: &str| {
        let (x, layouts) = of_set(name);
        heads.probabilities(x, layouts)
    };
    let val_p = probabilities("validation")?;
    let test_p = probabilities("test")?;
    let pairs = |p: &[Vec<f32>], t: &[Vec<f32>], k: usize| -> Vec<(f32, bool)> {
        p.iter().zip(t).map(|(p, t)| (p[k], t[k] > 0.5)).collect()
    };
    // An output without validation positives has no evidence for a
    // threshold: it is scored but never asserted.
    let thresholds: Vec<f32> = (0..outputs.len())
        .map(|k| {
            let p = pairs(&val_p, val_y, k);
            if p.iter().any(|x| x.1) {
                best_threshold(&p)
            } else {
                1.0
            }
        })
        .collect();
    let config = ImageModelConfig {
        encoder: encoder_config.without_classifier(),
        input_size,
        outputs: outputs.clone(),
        thresholds: thresholds.clone(),
        vocabulary_version: integrabner_core::RulePipeline::embedded().vocab.version,
        grey_layout: heads.grey_layout.as_ref().map(|(_, c)| c.clone()),
    };
    std::fs::write(
        out.join("config.json"),
        serde_json::to_string_pretty(&config)?,
    )?;
    candle_core::safetensors::save(&heads.tensors(), out.join("head.safetensors"))?;

    let count = |s| super::of_split(&images, s).len();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "{} (weights {}, frozen, {input_size} px) + linear head, + a linear head over the grey-level layout ({}). Images: {} train (+ mirrored copies, + {} shrunk to {} px), {} validation, {} test (split by patient, nih-split-v1). Features {:.0} s (cached afterwards), heads {:.1} s (encoder head {} steps, validation mean AUC {:.3}; layout head {} steps, {:.3}; together {:.3}).\n",
        encoder_name,
        weights.display(),
        heads.grey_layout.as_ref().map_or("weight 0: not kept".to_string(), |(_, c)| format!("{0}x{0} grid, weight {1}", c.side, c.weight)),
        count(Split::Train),
        features["train_thumbnails"].dim(0)?,
        super::THUMBNAIL_SIDE,
        count(Split::Validation),
        count(Split::Test),
        feature_seconds,
        head_seconds,
        image_training.steps,
        image_training.validation_auc,
        layout_training.steps,
        layout_training.validation_auc,
        validation_auc
    );
    let images_of = |name: &str| {
        sets.iter()
            .find(|s| s.0 == name)
            .map(|s| s.1.clone())
            .with_context(|| format!("no {name} set"))
    };
    let test_images = images_of("test")?;
    md.push_str("| output | test positives | test ROC-AUC (95 % interval, patients resampled) | threshold (validation) | test F1 |\n|---|---|---|---|---|\n");
    for (k, name) in outputs.iter().enumerate() {
        let p = pairs(&test_p, test_y, k);
        let estimate = AucEstimate::new(&test_images, &p);
        let f1 = f1_at(&p, thresholds[k]);
        let _ = writeln!(
            md,
            "| {name} | {} | {estimate} | {:.2} | {f1:.3} |",
            estimate.positives, thresholds[k]
        );
    }
    let abnormal = abnormal_index(&outputs)?;
    let by_split = [("validation", &val_p, val_y), ("test", &test_p, test_y)]
        .into_iter()
        .map(|(split, p, y)| {
            let images = images_of(split)?;
            Ok((split, by_source_resolution(&images, &pairs(p, y, abnormal))))
        })
        .collect::<Result<Vec<_>>>()?;
    md.push_str(
        "\nAbnormal vs normal ROC-AUC by source resolution (95 % interval; images / abnormal):\n\n",
    );
    md.push_str(&source_resolution_table(&by_split));
    std::fs::write(out.join("evaluation.md"), &md)?;
    Ok(md)
}
