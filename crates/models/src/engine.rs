//! The engine: the rules and whichever models a bundle ships, loaded and
//! cross-checked once, and the one entry point that analyses a case (a
//! report, one or more images, or both) for the CLI and the browser worker.
//!
//! A case's analysis is typed: each model's probabilities in its own output
//! order. `Prediction`, the JSON of `predict` and the page's exports, is
//! built from it once, at the edge (`Engine::prediction`).

use crate::fusion::{FusionMismatch, FusionTagger, ImageEvidence};
use crate::image_model::{ImageAnalysis, ImageError, ImageTagger};
use crate::report::{ReportError, ReportTagger};
use candle_core::Error as CandleError;
use integrabner_core::bundle::{BundleError, BundleFile};
use integrabner_core::doc::Doc;
use integrabner_core::image_input::Radiograph;
use integrabner_core::nih::ABNORMAL;
use integrabner_core::{
    Entity, Finding, FindingSource, HeatMap, ImageInfo, Prediction, RulePipeline, View,
};
use serde::{Deserialize, Serialize};

/// Said of a lateral view in the case's images.
pub const LATERAL_NOTE: &str =
    "a lateral view: the image model reads frontal radiographs only, so it was not analysed";

/// The rules, and the models that are there.
pub struct Engine {
    pub rules: RulePipeline,
    pub report: Option<ReportTagger>,
    pub image: Option<ImageTagger>,
    /// Used for a case with both a report (read by the report model) and
    /// images; kept only when both models are there.
    pub fusion: Option<FusionTagger>,
}

/// Why a bundle's models cannot be used together.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the rules cannot be loaded: {0}")]
    Rules(#[from] BundleError),
    #[error("the report model cannot be loaded: {0}")]
    Report(#[from] ReportError),
    #[error("the image model cannot be loaded: {0}")]
    Image(#[from] ImageError),
    #[error("the fusion model cannot be loaded: {0}")]
    Fusion(#[from] CandleError),
    #[error(transparent)]
    FusionMismatch(#[from] FusionMismatch),
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
    Fusion(#[from] CandleError),
}

/// What the engine made of one case.
#[derive(Debug, Clone, Default)]
pub struct CaseAnalysis {
    pub id: String,
    pub entities: Vec<Entity>,
    pub findings: Vec<Finding>,
    /// A heat map for each image finding.
    pub heat_maps: Vec<HeatMap>,
    /// The case's images as read, in input order.
    pub images: Vec<ImageInfo>,
    /// The report model's probabilities in its concept order; `None` when
    /// the rules read the report (or there is none).
    pub text: Option<Vec<f32>>,
    /// The image model's probabilities in its output order.
    pub image: Option<Vec<f32>>,
    /// The fusion model's probabilities in its concept order (the report
    /// model's).
    pub fused: Option<Vec<f32>>,
    /// Said to the user beside the result (the rules stood in for a model).
    pub note: Option<String>,
    /// The report as read (its mentions and their qualifier words): the
    /// findings' qualifiers are taken from it at the edge.
    pub doc: Option<Doc>,
}

/// What the page shows beside a case's findings, named so that nothing
/// parses score names back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The image model's probability that the case is abnormal, when it
    /// read the case's images.
    pub abnormal: Option<f32>,
    /// What each model said of every fused finding.
    pub fused: Vec<FusedParts>,
}

/// What each model said of a fused finding, for the people reading it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FusedParts {
    pub concept: String,
    pub text: f32,
    /// `None` when the image model does not score the concept.
    pub image: Option<f32>,
}

impl Engine {
    /// The rules and models, refused when they were not made for each other
    /// (vocabulary version, concepts, image outputs). A fusion model without
    /// both other models is dropped: it has nothing to fuse.
    pub fn new(
        rules: RulePipeline,
        report: Option<ReportTagger>,
        image: Option<ImageTagger>,
        fusion: Option<FusionTagger>,
    ) -> Result<Self, EngineError> {
        if let Some(r) = &report {
            r.check_rules(&rules)?;
        }
        if let Some(i) = &image {
            i.check_rules(&rules)?;
        }
        let fusion = match (fusion, &report, &image) {
            (Some(f), Some(r), Some(i)) => {
                f.check_models(&rules, r, i)?;
                Some(f)
            }
            _ => None,
        };
        Ok(Self {
            rules,
            report,
            image,
            fusion,
        })
    }

    /// The engine of a verified bundle's files (`BundleManifest::verify`):
    /// the rules, and each model the bundle ships.
    pub fn from_bundle(files: &[(&BundleFile, &[u8])]) -> Result<Self, EngineError> {
        let rules = RulePipeline::from_bundle(files)?;
        let report = ReportTagger::from_bundle(files)?;
        let image = ImageTagger::from_bundle(files)?;
        let fusion = match (&report, &image) {
            (Some(_), Some(_)) => FusionTagger::from_bundle(files)?,
            _ => None,
        };
        Self::new(rules, report, image, fusion)
    }

    /// Analyses a case. An empty `text` with images is an image-only case; a
    /// case with neither is refused as an empty report.
    ///
    /// The image model was trained on frontal radiographs: a view its file
    /// calls lateral is listed in the case's images, unread, and adds no
    /// finding; a case with no other view has its report's findings alone.
    pub fn analyse(
        &self,
        id: &str,
        text: &str,
        images: &[Radiograph],
    ) -> Result<CaseAnalysis, CaseError> {
        let has_text = !text.trim().is_empty() || images.is_empty();
        let mut case = CaseAnalysis {
            id: id.to_string(),
            images: images.iter().map(|r| r.info.clone()).collect(),
            ..Default::default()
        };
        let mut read = Vec::new();
        for (i, info) in case.images.iter_mut().enumerate() {
            if info.view == View::Lateral {
                info.analysed = false;
                info.notes.push(LATERAL_NOTE.to_string());
            } else {
                read.push(i);
            }
        }
        let views: Vec<_> = read.iter().map(|&i| &images[i].image).collect();
        let text_logits = if has_text {
            self.read_report(text, &mut case)?
        } else {
            None
        };
        if views.is_empty() {
            if !images.is_empty() {
                case.add_note("no frontal view: the image model was not run");
            }
            return Ok(case);
        }
        let Some(image) = &self.image else {
            if !has_text {
                return Err(CaseError::NoImageModel);
            }
            case.add_note("the bundle has no image model: the image was not analysed");
            return Ok(case);
        };
        let analysis = image.analyse(views)?;
        case.image = Some(analysis.probabilities.clone());
        match (&self.fusion, text_logits) {
            (Some(fusion), Some(text_logits)) => {
                self.fuse(fusion, image, &analysis, &text_logits, &mut case)?
            }
            _ => {
                let seen = image.findings(&self.rules, &analysis)?;
                case.findings.extend(seen.findings);
                case.heat_maps = seen.heat_maps;
            }
        }
        for map in &mut case.heat_maps {
            map.image = read[map.image];
        }
        Ok(case)
    }

    /// The report through the report model, or the rules when there is none
    /// or the report is too long for it; the report model's calibrated
    /// logits when it read the report.
    fn read_report(
        &self,
        text: &str,
        case: &mut CaseAnalysis,
    ) -> Result<Option<Vec<f32>>, CaseError> {
        if let Some(report) = &self.report {
            match report.analyse(&self.rules, text, true) {
                Ok(a) => {
                    case.entities = self.rules.entities(&a.doc);
                    case.findings = report.findings(&self.rules, &a);
                    case.text = Some(a.probabilities);
                    case.doc = Some(a.doc);
                    return Ok(Some(a.logits));
                }
                Err(e @ ReportError::TooLongForModel { .. }) => {
                    case.add_note(&format!("{e}, so the rule labeler analysed it alone"));
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Qualified once, in `prediction`, like the other paths' findings.
        let doc = self.rules.doc(text).map_err(ReportError::from)?;
        case.entities = self.rules.entities(&doc);
        case.findings = self.rules.findings.findings(&doc, &self.rules.vocab);
        case.doc = Some(doc);
        Ok(None)
    }

    /// Replaces the report's findings by fused ones (source `fusion`), each
    /// image output among them with its heat map.
    fn fuse(
        &self,
        fusion: &FusionTagger,
        image: &ImageTagger,
        analysis: &ImageAnalysis,
        text_logits: &[f32],
        case: &mut CaseAnalysis,
    ) -> Result<(), CaseError> {
        let fused = fusion.fuse(
            Some(text_logits),
            Some(&ImageEvidence {
                features: &analysis.features,
                logits: &analysis.logits,
            }),
        )?;
        case.findings.clear();
        for ((concept, &f), &threshold) in fusion
            .config
            .concepts
            .iter()
            .zip(&fused)
            .zip(&fusion.config.thresholds)
        {
            if f < threshold {
                continue;
            }
            let Some(id) = self.rules.vocab.find(concept) else {
                continue;
            };
            case.findings.push(
                self.rules
                    .vocab
                    .concept(id)
                    .finding(f, FindingSource::Fusion),
            );
            case.heat_maps.extend(image.heat_map(analysis, concept)?);
        }
        case.fused = Some(fused);
        Ok(())
    }

    /// The output object of a case, with every model's probability as
    /// `scores` when asked for (`predict --scores`; see `Prediction::scores`
    /// for the names). It takes the case: its lists move, uncopied.
    pub fn prediction(&self, case: CaseAnalysis, with_scores: bool) -> Prediction {
        let mut p = Prediction {
            id: case.id,
            findings: case.findings,
            entities: case.entities,
            heat_maps: case.heat_maps,
            images: case.images,
            ..Default::default()
        };
        if let Some(doc) = &case.doc {
            self.rules.qualify(doc, &mut p.findings);
        }
        if !with_scores {
            return p;
        }
        let concepts = self.report.as_ref().map(|r| &r.config.concepts);
        let outputs = self.image.as_ref().map(|i| &i.config.outputs);
        let text_prefix = if case.fused.is_some() { "text:" } else { "" };
        if let (Some(names), Some(text)) = (concepts, &case.text) {
            for (name, &t) in names.iter().zip(text) {
                p.scores.insert(format!("{text_prefix}{name}"), t);
            }
        }
        if let (Some(names), Some(fused)) = (concepts, &case.fused) {
            p.scores
                .extend(names.iter().cloned().zip(fused.iter().copied()));
        }
        if let (Some(names), Some(image)) = (outputs, &case.image) {
            let prefixed = case.text.is_some();
            for (name, &s) in names.iter().zip(image) {
                let key = if prefixed && name != ABNORMAL {
                    format!("image:{name}")
                } else {
                    name.clone()
                };
                p.scores.insert(key, s);
            }
        }
        p
    }

    /// What the page shows beside the case's findings.
    pub fn evidence(&self, case: &CaseAnalysis) -> Evidence {
        let outputs = self.image.as_ref().map(|i| &i.config.outputs);
        let image = |name: &str| -> Option<f32> {
            let k = outputs?.iter().position(|o| o == name)?;
            case.image.as_ref()?.get(k).copied()
        };
        let fused = match (&self.report, &case.text) {
            (Some(report), Some(text)) => case
                .findings
                .iter()
                .filter(|f| f.source == FindingSource::Fusion)
                .filter_map(|f| {
                    let c = report
                        .config
                        .concepts
                        .iter()
                        .position(|c| *c == f.concept)?;
                    Some(FusedParts {
                        concept: f.concept.clone(),
                        text: text[c],
                        image: image(&f.concept),
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
        Evidence {
            abnormal: image(ABNORMAL),
            fused,
        }
    }
}

impl CaseAnalysis {
    fn add_note(&mut self, note: &str) {
        self.note = Some(match self.note.take() {
            Some(n) => format!("{n}; {note}"),
            None => note.to_string(),
        });
    }
}
