//! A case is a report, one or more images (frontal, lateral), or both: the
//! one entry point of the CLI and the browser worker. The report goes
//! through the report model (or the rules), each image through the image
//! model; their findings are listed side by side with their source.

use crate::fusion::{FusionTagger, ImageEvidence};
use crate::image_model::{ImageAnalysis, ImageError, ImageTagger};
use crate::report::{analyse_report, Analysed, ReportError, ReportTagger};
use integrabner_core::image_input::DynamicImage;
use integrabner_core::nih::ABNORMAL;
use integrabner_core::{Finding, FindingSource, Prediction, RulePipeline};

/// The loaded models; the rules are always there.
#[derive(Clone, Copy)]
pub struct Models<'a> {
    pub rules: &'a RulePipeline,
    pub report: Option<&'a ReportTagger>,
    pub image: Option<&'a ImageTagger>,
    /// Used for a case with both a report (read by the report model) and images.
    pub fusion: Option<&'a FusionTagger>,
}

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("the bundle has no image model, so an image alone gives no findings")]
    NoImageModel,
    #[error("fusion: {0}")]
    Fusion(#[from] candle_core::Error),
}

/// Analyses a case. An empty `text` with images is an image-only case; a
/// case with neither is refused as an empty report.
pub fn analyse_case(
    models: Models,
    id: &str,
    text: &str,
    views: &[DynamicImage],
) -> Result<Analysed, CaseError> {
    let has_text = !text.trim().is_empty() || views.is_empty();
    let mut analysed = if has_text {
        analyse_report(models.report, models.rules, id, text)?
    } else {
        Analysed {
            prediction: Prediction {
                id: id.to_string(),
                ..Default::default()
            },
            note: None,
        }
    };
    if views.is_empty() {
        return Ok(analysed);
    }
    let Some(image) = models.image else {
        if !has_text {
            return Err(CaseError::NoImageModel);
        }
        let note = "the bundle has no image model: the image was not analysed";
        analysed.note = Some(match analysed.note.take() {
            Some(n) => format!("{n}; {note}"),
            None => note.to_string(),
        });
        return Ok(analysed);
    };
    let analysis = image.analyse(views)?;
    if let Some(fusion) = models.fusion {
        if let Some(text) = text_probabilities(fusion, &analysed.prediction) {
            fuse(
                models,
                fusion,
                image,
                &analysis,
                &text,
                &mut analysed.prediction,
            )?;
            return Ok(analysed);
        }
    }
    let seen = image.findings(models.rules, &analysis)?;
    let p = &mut analysed.prediction;
    let text_scored = !p.scores.is_empty();
    for (name, score) in seen.scores {
        let key = if text_scored && name != ABNORMAL {
            format!("image:{name}")
        } else {
            name
        };
        p.scores.insert(key, score);
    }
    p.findings.extend(seen.findings);
    p.heat_maps = seen.heat_maps;
    Ok(analysed)
}

/// The report model's probabilities in the fusion model's concept order, if
/// the report model (not the rules) read the report.
fn text_probabilities(fusion: &FusionTagger, prediction: &Prediction) -> Option<Vec<f32>> {
    fusion
        .config
        .concepts
        .iter()
        .map(|c| prediction.scores.get(c).copied())
        .collect()
}

/// Replaces the text findings by fused ones (source `fusion`), each image
/// output among them with its heat map. Scores: fused as `NAME`, the single
/// models' as `text:NAME` and `image:NAME`, and `abnormal`.
fn fuse(
    models: Models,
    fusion: &FusionTagger,
    image: &ImageTagger,
    analysis: &ImageAnalysis,
    text: &[f32],
    p: &mut Prediction,
) -> Result<(), CaseError> {
    let fused = fusion.fuse(
        Some(text),
        Some(&ImageEvidence {
            features: &analysis.features,
            probabilities: &analysis.probabilities,
        }),
    )?;
    p.findings.clear();
    p.scores.clear();
    for ((concept, &t), (&f, &threshold)) in fusion
        .config
        .concepts
        .iter()
        .zip(text)
        .zip(fused.iter().zip(&fusion.config.thresholds))
    {
        p.scores.insert(format!("text:{concept}"), t);
        p.scores.insert(concept.clone(), f);
        if f < threshold {
            continue;
        }
        let Some(id) = models.rules.vocab.find(concept) else {
            continue;
        };
        let c = models.rules.vocab.concept(id);
        p.findings.push(Finding {
            concept: c.heading.clone(),
            concept_type: c.concept_type,
            probability: f,
            source: FindingSource::Fusion,
        });
        p.heat_maps.extend(image.heat_map(analysis, concept)?);
    }
    for (name, &score) in image.config.outputs.iter().zip(&analysis.probabilities) {
        let key = if name == ABNORMAL {
            name.clone()
        } else {
            format!("image:{name}")
        };
        p.scores.insert(key, score);
    }
    Ok(())
}
