//! Synonym precision: phrases that must not be mistaken for another concept.

mod common;
use common::{entities, findings};
use integrabner_core::vocab::Vocabulary;

fn concepts(text: &str) -> Vec<String> {
    entities(text)
        .into_iter()
        .filter_map(|(_, c, _)| c)
        .collect()
}

#[test]
fn embedded_vocabulary_is_valid_and_typed() {
    let v = Vocabulary::embedded();
    assert!(v.concepts.len() >= 110, "{} concepts", v.concepts.len());
    for h in [
        "Pulmonary Atelectasis",
        "Aorta, Thoracic",
        "Catheters, Indwelling",
        "Lung",
        "Opacity",
    ] {
        assert!(v.find(h).is_some(), "{h} missing");
    }
    // modifiers are attributes, not concepts
    for m in ["left", "mild", "enlarged", "right", "bilateral"] {
        assert!(v.find(m).is_none(), "{m} must not be a concept");
    }
}

#[test]
fn effusion_alone_is_pleural_not_pericardial() {
    assert_eq!(concepts("Small effusion."), ["Pleural Effusion"]);
    assert_eq!(
        concepts("Small pericardial effusion."),
        ["Pericardial Effusion"]
    );
    assert_eq!(
        findings("Small pericardial effusion."),
        ["Pericardial Effusion"]
    );
}

#[test]
fn pleura_does_not_match_inside_pleural() {
    let c = concepts("Right pleural effusion and pleural thickening.");
    assert_eq!(c, ["Pleural Effusion", "Thickening"]);
    assert!(!c.contains(&"Pleura".to_string()));
}

#[test]
fn pulmonary_alone_means_nothing() {
    assert!(concepts("Pulmonary vascularity is normal.").is_empty());
    assert!(concepts("The pulmonary findings are stable.").is_empty());
}

#[test]
fn longest_phrase_wins() {
    assert_eq!(concepts("Calcified granuloma."), ["Calcified Granuloma"]);
    assert_eq!(
        concepts("Subcutaneous emphysema."),
        ["Subcutaneous Emphysema"]
    );
    assert_eq!(concepts("Hiatal hernia."), ["Hernia, Hiatal"]);
    assert_eq!(concepts("Tortuous thoracic aorta."), ["Aorta, Thoracic"]);
    assert_eq!(concepts("Bullous emphysema."), ["Bullous Emphysema"]);
}

#[test]
fn plurals_case_and_hyphens() {
    assert_eq!(concepts("OPACITIES"), ["Opacity"]);
    assert_eq!(
        concepts("Bilateral pleural effusions."),
        ["Pleural Effusion"]
    );
    assert_eq!(
        concepts("plate-like atelectasis"),
        ["Pulmonary Atelectasis"]
    );
}

#[test]
fn normal_structures_are_not_findings() {
    for text in [
        "Clear lungs.",
        "The lungs are clear.",
        "Heart size is normal.",
        "The cardiomediastinal silhouette is within normal limits.",
        "Normal mediastinal contour.",
        "The aorta is normal in caliber.",
        "Visualized osseous structures of the thorax are without acute abnormality.",
        "Lungs are well expanded.",
    ] {
        assert!(findings(text).is_empty(), "{text}: {:?}", findings(text));
    }
}

#[test]
fn abnormal_structures_are_coded() {
    assert_eq!(findings("Tortuous aorta."), ["Aorta"]);
    assert_eq!(findings("Hyperexpanded lungs."), ["Lung"]);
    assert_eq!(findings("Low lung volumes."), ["Lung"]);
    assert_eq!(
        findings("Degenerative changes of the thoracic spine."),
        ["Thoracic Vertebrae"]
    );
    assert_eq!(findings("Elevated right hemidiaphragm."), ["Diaphragm"]);
    assert_eq!(
        findings("Blunting of the left costophrenic angle."),
        ["Costophrenic Angle"]
    );
    // an enlarged heart is coded as cardiomegaly, as OpenI does
    assert_eq!(findings("The heart is enlarged."), ["Cardiomegaly"]);
}
