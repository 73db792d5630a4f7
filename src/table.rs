//! The findings table's rows: filtered by the confidence threshold, sorted by
//! the column the user picked.

use integrabner_core::{Finding, FindingSource, Prediction};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Term,
    Type,
    Confidence,
    Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Self {
            key: SortKey::Confidence,
            descending: true,
        }
    }
}

impl Sort {
    /// Clicking the current column flips the order; another column starts
    /// descending for confidence and ascending for text.
    pub fn click(self, key: SortKey) -> Self {
        if self.key == key {
            Self {
                key,
                descending: !self.descending,
            }
        } else {
            Self {
                key,
                descending: key == SortKey::Confidence,
            }
        }
    }
}

pub fn rows(findings: &[Finding], threshold: f32, sort: Sort) -> Vec<Finding> {
    let mut rows: Vec<Finding> = findings
        .iter()
        .filter(|f| f.probability >= threshold)
        .cloned()
        .collect();
    rows.sort_by(|a, b| {
        let primary = match sort.key {
            SortKey::Term => a.concept.cmp(&b.concept),
            SortKey::Type => a.concept_type.cmp(&b.concept_type),
            SortKey::Confidence => a.probability.total_cmp(&b.probability),
            SortKey::Source => a.source.cmp(&b.source),
        };
        let primary = if sort.descending {
            primary.reverse()
        } else {
            primary
        };
        primary.then_with(|| a.concept.cmp(&b.concept))
    });
    rows
}

/// The image (or fused) finding whose heat map is drawn first: the most
/// probable one that has a map.
pub fn strongest_mapped_finding(p: &Prediction) -> Option<String> {
    p.findings
        .iter()
        .filter(|f| matches!(f.source, FindingSource::Image | FindingSource::Fusion))
        .filter(|f| p.heat_maps.iter().any(|h| h.concept == f.concept))
        .max_by(|a, b| a.probability.total_cmp(&b.probability))
        .map(|f| f.concept.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrabner_core::{ConceptType, HeatMap};

    fn finding(concept: &str, t: ConceptType, p: f32) -> Finding {
        Finding {
            concept: concept.into(),
            concept_type: t,
            probability: p,
            source: FindingSource::Dictionary,
            qualifiers: Vec::new(),
            qualifiers_by_kind: Default::default(),
        }
    }

    #[test]
    fn the_strongest_image_finding_with_a_map_is_drawn_first() {
        let image = |concept: &str, p: f32| {
            let mut f = finding(concept, ConceptType::Disease, p);
            f.source = FindingSource::Image;
            f
        };
        let map = |concept: &str| HeatMap {
            concept: concept.into(),
            image: 0,
            rows: 1,
            cols: 1,
            values: vec![1.0],
            region: [0.0, 0.0, 1.0, 1.0],
        };
        let mut p = Prediction {
            findings: vec![
                finding("Cardiomegaly", ConceptType::Disease, 0.99),
                image("Nodule", 0.6),
                image("Mass", 0.9),
            ],
            heat_maps: vec![map("Nodule")],
            ..Default::default()
        };
        assert_eq!(strongest_mapped_finding(&p).as_deref(), Some("Nodule"));
        p.heat_maps.push(map("Mass"));
        assert_eq!(strongest_mapped_finding(&p).as_deref(), Some("Mass"));
        p.heat_maps.clear();
        assert_eq!(strongest_mapped_finding(&p), None);
    }

    #[test]
    fn threshold_filters_and_clicks_toggle_order() {
        let fs = [
            finding("Cardiomegaly", ConceptType::Disease, 0.95),
            finding("Opacity", ConceptType::Finding, 0.5),
            finding("Lung", ConceptType::Anatomy, 0.95),
        ];
        let names = |rows: Vec<Finding>| rows.into_iter().map(|f| f.concept).collect::<Vec<_>>();
        assert_eq!(
            names(rows(&fs, 0.0, Sort::default())),
            ["Cardiomegaly", "Lung", "Opacity"]
        );
        assert_eq!(
            names(rows(&fs, 0.6, Sort::default())),
            ["Cardiomegaly", "Lung"]
        );
        let by_term = Sort::default().click(SortKey::Term);
        assert_eq!(
            names(rows(&fs, 0.0, by_term)),
            ["Cardiomegaly", "Lung", "Opacity"]
        );
        assert_eq!(
            names(rows(&fs, 0.0, by_term.click(SortKey::Term))),
            ["Opacity", "Lung", "Cardiomegaly"]
        );
        let by_type = by_term.click(SortKey::Type);
        assert_eq!(
            names(rows(&fs, 0.0, by_type)),
            ["Lung", "Cardiomegaly", "Opacity"]
        );
    }
}
