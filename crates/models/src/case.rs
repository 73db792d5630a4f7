//! A case is a report, one or more images (frontal, lateral), or both: the
//! one entry point of the CLI and the browser worker. The report goes
//! through the report model (or the rules), each image through the image
//! model; their findings are listed side by side with their source.

use crate::image_model::{ImageError, ImageTagger};
use crate::report::{analyse_report, Analysed, ReportError, ReportTagger};
use integrabner_core::image_input::DynamicImage;
use integrabner_core::nih::ABNORMAL;
use integrabner_core::{Prediction, RulePipeline};

/// The loaded models; the rules are always there.
#[derive(Clone, Copy)]
pub struct Models<'a> {
    pub rules: &'a RulePipeline,
    pub report: Option<&'a ReportTagger>,
    pub image: Option<&'a ImageTagger>,
}

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("the bundle has no image model, so an image alone gives no findings")]
    NoImageModel,
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
