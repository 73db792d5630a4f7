//! NegBio's (and CheXpert's) 14 observations read from OpenI's MeSH
//! headings, so that our document coding can be compared with the labelers
//! that report on those 14. The mapping is ours (EVALUATION.md lists it);
//! `No Finding` follows CheXpert: none of the other observations but
//! `Support Devices`.

use integrabner_core::metrics::MultiLabelEval;
use std::collections::BTreeSet;

pub const NO_FINDING: &str = "No Finding";

/// Each observation with the headings that code it.
pub const OBSERVATIONS: [(&str, &[&str]); 13] = [
    (
        "Enlarged Cardiomediastinum",
        &["Mediastinum", "Cardiac Shadow"],
    ),
    ("Cardiomegaly", &["Cardiomegaly"]),
    ("Lung Lesion", &["Nodule", "Mass", "Cavitation", "Cysts"]),
    (
        "Lung Opacity",
        &["Opacity", "Airspace Disease", "Density", "Infiltrate"],
    ),
    ("Edema", &["Pulmonary Edema", "Pulmonary Congestion"]),
    ("Consolidation", &["Consolidation"]),
    ("Pneumonia", &["Pneumonia"]),
    ("Atelectasis", &["Pulmonary Atelectasis"]),
    ("Pneumothorax", &["Pneumothorax", "Hydropneumothorax"]),
    (
        "Pleural Effusion",
        &["Pleural Effusion", "Hydropneumothorax", "Hemothorax"],
    ),
    ("Pleural Other", &["Pleura"]),
    ("Fracture", &["Fractures, Bone"]),
    (
        "Support Devices",
        &[
            "Catheters, Indwelling",
            "Implanted Medical Device",
            "Surgical Instruments",
            "Medical Device",
            "Tube, Inserted",
            "Stents",
        ],
    ),
];

/// The observations coded by a report's headings.
pub fn observations<'a>(headings: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    let headings: BTreeSet<&str> = headings.into_iter().map(String::as_str).collect();
    let mut out: BTreeSet<String> = OBSERVATIONS
        .iter()
        .filter(|(_, codes)| codes.iter().any(|c| headings.contains(c)))
        .map(|(name, _)| name.to_string())
        .collect();
    if out.iter().all(|o| o == "Support Devices") {
        out.insert(NO_FINDING.to_string());
    }
    out
}

/// Adds one report's gold and predicted headings to `eval`, as observations.
pub fn add(eval: &mut MultiLabelEval, gold: &BTreeSet<String>, predicted: &BTreeSet<String>) {
    eval.add(&observations(gold), &observations(predicted));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(headings: &[&str]) -> Vec<String> {
        let h: Vec<String> = headings.iter().map(|s| s.to_string()).collect();
        observations(&h).into_iter().collect()
    }

    #[test]
    fn headings_map_to_observations_and_no_finding_ignores_devices() {
        assert_eq!(of(&[]), ["No Finding"]);
        assert_eq!(of(&["Scoliosis"]), ["No Finding"]);
        assert_eq!(
            of(&["Stents", "Scoliosis"]),
            ["No Finding", "Support Devices"]
        );
        assert_eq!(
            of(&["Hydropneumothorax", "Opacity"]),
            ["Lung Opacity", "Pleural Effusion", "Pneumothorax"]
        );
    }

    #[test]
    fn every_mapped_heading_is_a_vocabulary_heading() {
        let vocab = integrabner_core::vocab::Vocabulary::embedded();
        for (_, codes) in OBSERVATIONS {
            for c in codes {
                assert!(vocab.find(c).is_some(), "{c} is not a heading");
            }
        }
    }
}
