//! The fusion model's examples of one split: OpenI reports alone, NIH images
//! alone, label-matched constructed pairs, and real OpenI pairs when the
//! user has the images.

use super::{construct_pairs, Example};
use crate::report::LabelledReport;
use integrabner_core::nih::NihImage;
use integrabner_core::split::Split;
use std::collections::{BTreeSet, HashMap};

/// Reports and images of one split, as examples of each kind.
pub struct SplitData {
    pub reports: Vec<Example>,
    pub report_gold: Vec<BTreeSet<String>>,
    pub images: Vec<Example>,
    pub pairs: Vec<Example>,
    pub pair_gold: Vec<BTreeSet<String>>,
    /// OpenI reports with their own images, when the user has them.
    pub real: Vec<Example>,
    pub real_gold: Vec<BTreeSet<String>>,
}

pub fn labels_of(concepts: &[String], positive: &BTreeSet<String>) -> Vec<f32> {
    concepts
        .iter()
        .map(|c| f32::from(u8::from(positive.contains(c))))
        .collect()
}

#[allow(clippy::too_many_arguments)]
pub fn split_data(
    split: Split,
    reports: &[LabelledReport],
    text_logits: &HashMap<String, Vec<f32>>,
    images: &[&NihImage],
    features: &[(Vec<f32>, Vec<f32>)],
    concepts: &[String],
    shared: &BTreeSet<String>,
    image_known: &[f32],
    per_image: usize,
) -> SplitData {
    let reports: Vec<(&LabelledReport, &Vec<f32>)> = reports
        .iter()
        .filter_map(|r| Some((r, text_logits.get(&r.id)?)))
        .collect();
    let all = vec![1.0; concepts.len()];
    let report_examples = reports
        .iter()
        .map(|(r, t)| Example {
            text: Some((*t).clone()),
            image: None,
            labels: labels_of(concepts, &r.gold),
            mask: all.clone(),
        })
        .collect();
    let image_labels: Vec<(String, BTreeSet<String>)> = images
        .iter()
        .map(|i| (i.file.clone(), i.concepts.iter().cloned().collect()))
        .collect();
    let image_examples = image_labels
        .iter()
        .zip(features)
        .map(|((_, labels), f)| Example {
            text: None,
            image: Some(f.clone()),
            labels: labels_of(concepts, labels),
            mask: image_known.to_vec(),
        })
        .collect();
    let gold: Vec<BTreeSet<String>> = reports.iter().map(|(r, _)| r.gold.clone()).collect();
    let pairs = construct_pairs(&image_labels, &gold, shared, per_image);
    eprintln!(
        "{}: {} reports, {} images, {} constructed pairs ({} images paired)",
        split.as_str(),
        reports.len(),
        images.len(),
        pairs.len(),
        pairs.iter().map(|p| p.0).collect::<BTreeSet<_>>().len()
    );
    SplitData {
        reports: report_examples,
        report_gold: gold.clone(),
        pair_gold: pairs.iter().map(|&(_, r)| gold[r].clone()).collect(),
        pairs: pairs
            .iter()
            .map(|&(i, r)| Example {
                text: Some(reports[r].1.clone()),
                image: Some(features[i].clone()),
                labels: labels_of(concepts, &gold[r]),
                mask: all.clone(),
            })
            .collect(),
        images: image_examples,
        real: Vec::new(),
        real_gold: Vec::new(),
    }
}
