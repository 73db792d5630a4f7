//! `image export`: the trained encoder and heads as one bundle directory,
//! scored on the test split as written (8-bit) beside the f32 model.

use crate::nih_eval::{abnormal_index, by_source_resolution, Part};
use crate::progress;
use crate::source::read_nih_images;
use anyhow::{Context, Result};
use integrabner_core::bundle::IMAGE_MODEL_FILES;
use integrabner_core::image_input::decode;
use integrabner_core::metrics::roc_auc;
use integrabner_core::split::Split;
use integrabner_models::efficientnet::EfficientNetConfig;
use integrabner_models::encoder::EncoderConfig;
use integrabner_models::image_model::{ImageModelConfig, ImageTagger};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// EfficientNet-Lite0 as `image train` uses it, with the stages it pools.
pub fn lite0() -> EncoderConfig {
    EncoderConfig::EfficientNet(EfficientNetConfig {
        pooled_stages: LITE0_POOLED_STAGES.to_vec(),
        ..EfficientNetConfig::lite0()
    })
}

/// The Lite0 stages pooled beside its head's map: every stage after the
/// first (24 to 320 channels), chosen on the validation split (EVALUATION.md).
pub const LITE0_POOLED_STAGES: [usize; 6] = [1, 2, 3, 4, 5, 6];

/// Where the EfficientNet-Lite0 ImageNet weights are in this workspace.
const LITE0_WEIGHTS: &str = "../shared/weights/efficientnet-lite0/efficientnet-lite0.safetensors";

/// The encoder weights to read: the ones given, else Lite0's default path.
pub fn weights_of(config: &EncoderConfig, given: Option<&Path>) -> Result<PathBuf> {
    match (given, config) {
        (Some(p), _) => Ok(p.to_path_buf()),
        (None, EncoderConfig::EfficientNet(_)) => Ok(LITE0_WEIGHTS.into()),
        (None, EncoderConfig::ResNet(_)) => anyhow::bail!(
            "ResNet-50 needs --weights: a torchvision resnet50-*.pth or a timm model.safetensors \
             (no pretrained ResNet-50 ships with IntegraBNER)"
        ),
    }
}

/// Where the encoder's weights came from, for the manifest.
fn encoder_provenance(config: &EncoderConfig) -> &'static str {
    match config {
        EncoderConfig::EfficientNet(_) => {
            "EfficientNet-Lite0 with ImageNet weights (Apache-2.0, converted from the TensorFlow release)"
        }
        EncoderConfig::ResNet(_) => {
            "ResNet-50 with the user's torchvision or timm ImageNet weights (see their licence)"
        }
    }
}

const EXPORT_PROVENANCE: &str = "trained by `integrabner image train` on the NIH ChestX-ray14 \
sample (train split of nih-split-v1), thresholds chosen on its validation split; written by \
`integrabner image export`.";

/// What the model's heads read, for the manifest.
fn heads_provenance(config: &ImageModelConfig) -> String {
    match &config.grey_layout {
        Some(c) => format!(
            "frozen, and a linear head, plus a linear head over the image's grey-level layout \
             ({0}x{0} grid) with its logits at weight {1},",
            c.side, c.weight
        ),
        None => "frozen, and a linear head".to_string(),
    }
}

/// Writes the bundle directory, then scores the written model and the f32
/// model on the test split for its manifest.
pub fn export(model: &Path, weights: Option<&Path>, nih: &Path, out: &Path) -> Result<()> {
    let config_json = std::fs::read(model.join("config.json"))
        .with_context(|| format!("cannot read {}/config.json", model.display()))?;
    let config: ImageModelConfig = serde_json::from_slice(&config_json)?;
    let weights = weights_of(&config.encoder, weights)?;
    let tensors = super::model_tensors(&config.encoder, &weights, &model.join("head.safetensors"))?;
    std::fs::create_dir_all(out)?;
    let gguf = integrabner_models::quantized::to_gguf(&tensors, &[])?;
    std::fs::write(out.join("model.gguf"), &gguf)?;
    std::fs::write(out.join("config.json"), &config_json)?;

    let images = read_nih_images(nih)?;
    let test = super::of_split(&images, Split::Test);
    let written = ImageTagger::from_bytes(&config_json, &gguf)?;
    let full = ImageTagger::from_tensors(config.clone(), tensors)?;
    let progress = progress::bar(test.len(), "test, written vs f32", "images");
    // Per image: written model's probabilities, f32 model's, targets.
    let mut scored: Vec<[Vec<f32>; 3]> = Vec::new();
    for img in &test {
        let path = nih.join(&img.file);
        let view = decode(&std::fs::read(&path).with_context(|| format!("{}", path.display()))?)
            .with_context(|| format!("{}", path.display()))?;
        let views = [view];
        scored.push([
            written.analyse(&views)?.probabilities,
            full.analyse(&views)?.probabilities,
            super::targets(img, &config.outputs),
        ]);
        progress.inc(1);
    }
    progress.finish_and_clear();
    let mut metrics = BTreeMap::new();
    for (k, name) in config.outputs.iter().enumerate() {
        let auc = |model: usize| {
            roc_auc(
                &scored
                    .iter()
                    .map(|s| (s[model][k], s[2][k] > 0.5))
                    .collect::<Vec<_>>(),
            )
        };
        if let (Some(q), Some(f)) = (auc(0), auc(1)) {
            eprintln!("{name}: test ROC-AUC {q:.4} (f32 {f:.4})");
            metrics.insert(format!("test roc-auc {name}"), q);
            metrics.insert(format!("test roc-auc {name} f32"), f);
        }
    }
    metrics.insert("test images".into(), test.len() as f64);
    let abnormal = abnormal_index(&config.outputs)?;
    let abnormal_pairs: Vec<(f32, bool)> = scored
        .iter()
        .map(|s| (s[0][abnormal], s[2][abnormal] > 0.5))
        .collect();
    for (part, estimate) in by_source_resolution(&test, &abnormal_pairs) {
        eprintln!(
            "abnormal, {part} ({} images, {} abnormal): test ROC-AUC {estimate}",
            estimate.images, estimate.positives
        );
        // The whole split's AUC is already in as "test roc-auc abnormal".
        if let (Part::SourceResolution(_), Some(auc)) = (part, estimate.auc) {
            metrics.insert(format!("test roc-auc abnormal, {part}"), auc);
        }
        if let Some((low, high)) = estimate.interval {
            metrics.insert(format!("test roc-auc abnormal, {part}, 95% low"), low);
            metrics.insert(format!("test roc-auc abnormal, {part}, 95% high"), high);
        }
    }
    let provenance = format!(
        "Image model of IntegraBNER: {}, {} {EXPORT_PROVENANCE}",
        encoder_provenance(&config.encoder),
        heads_provenance(&config)
    );
    crate::export::write_manifest(out, &IMAGE_MODEL_FILES, &provenance, metrics)
}
