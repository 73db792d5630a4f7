//! The NIH ChestX-ray14 label file and its findings as vocabulary concepts.
//!
//! `labels.csv`: `file, source_resolution, finding_labels, patient_id, view,
//! age, sex`; `finding_labels` holds NIH findings separated by `|`, or
//! `No Finding`. NIH mined these labels from reports (about 90% accurate).

use crate::split::{nih_split_of, Split};
use serde::Deserialize;

/// NIH finding → vocabulary heading (OpenI MeSH spelling).
pub const NIH_TO_VOCABULARY: [(&str, &str); 14] = [
    ("Atelectasis", "Pulmonary Atelectasis"),
    ("Cardiomegaly", "Cardiomegaly"),
    ("Consolidation", "Consolidation"),
    ("Edema", "Pulmonary Edema"),
    ("Effusion", "Pleural Effusion"),
    ("Emphysema", "Pulmonary Emphysema"),
    ("Fibrosis", "Pulmonary Fibrosis"),
    ("Hernia", "Hernia, Hiatal"),
    ("Infiltration", "Infiltrate"),
    ("Mass", "Mass"),
    ("Nodule", "Nodule"),
    ("Pleural_Thickening", "Thickening"),
    ("Pneumonia", "Pneumonia"),
    ("Pneumothorax", "Pneumothorax"),
];

/// The score name of "the image shows any finding".
pub const ABNORMAL: &str = "abnormal";

#[derive(Debug, Clone, PartialEq)]
pub struct NihImage {
    /// Path relative to the data directory (`images/00000001_000.png`).
    pub file: String,
    pub patient_id: String,
    /// Side in pixels of the image NIH's copy was made from: 1024 for the
    /// radiographs stored at 512 px, 64 for the thumbnails. Evaluation
    /// reports the two apart, since the thumbnails are far harder.
    pub source_resolution: u32,
    /// Vocabulary headings of its findings; empty for `No Finding`.
    pub concepts: Vec<String>,
    pub split: Split,
}

#[derive(Deserialize)]
struct Row {
    file: String,
    source_resolution: u32,
    finding_labels: String,
    patient_id: String,
}

/// Reads `labels.csv`. An unknown finding name is an error naming the line.
pub fn read_labels(csv_text: &str) -> Result<Vec<NihImage>, String> {
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let mut out = Vec::new();
    for (i, row) in reader.deserialize::<Row>().enumerate() {
        let row = row.map_err(|e| format!("labels.csv line {}: {e}", i + 2))?;
        let mut concepts = Vec::new();
        for label in row.finding_labels.split('|').map(str::trim) {
            if label == "No Finding" {
                continue;
            }
            let heading = NIH_TO_VOCABULARY
                .iter()
                .find(|(nih, _)| *nih == label)
                .map(|(_, h)| h.to_string())
                .ok_or_else(|| format!("labels.csv line {}: unknown finding {label:?}", i + 2))?;
            concepts.push(heading);
        }
        out.push(NihImage {
            split: nih_split_of(&row.patient_id),
            file: row.file,
            patient_id: row.patient_id,
            source_resolution: row.source_resolution,
            concepts,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_map_to_vocabulary_and_patients_stay_in_one_split() {
        let csv = "file,source_resolution,finding_labels,patient_id,view,age,sex\n\
                   images/a.png,1024,Effusion|Infiltration,7,PA,50,M\n\
                   images/b.png,1024,No Finding,7,PA,51,M\n";
        let images = read_labels(csv).unwrap();
        assert_eq!(images[0].concepts, ["Pleural Effusion", "Infiltrate"]);
        assert!(images[1].concepts.is_empty());
        assert_eq!(images[0].split, images[1].split);
        assert_eq!(images[0].source_resolution, 1024);
        assert!(read_labels(&csv.replace("Effusion|", "Efusion|")).is_err());
    }

    #[test]
    fn every_nih_finding_is_a_vocabulary_concept() {
        let vocab = crate::vocab::Vocabulary::embedded();
        for (_, heading) in NIH_TO_VOCABULARY {
            assert!(vocab.find(heading).is_some(), "{heading}");
        }
    }
}
