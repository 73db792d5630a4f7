//! The fusion model's test tables: reports alone, images alone, constructed
//! and real pairs, each model beside the fused one.

use super::data::SplitData;
use super::{probabilities, Example};
use anyhow::Result;
use integrabner_core::calibration::sigmoid;
use integrabner_core::metrics::{roc_auc, MultiLabelEval};
use integrabner_models::fusion::FusionTagger;
use integrabner_models::image_model::ImageModelConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// Micro and macro F1 of predicted sets against gold sets.
fn f1s(gold: &[BTreeSet<String>], predicted: &[BTreeSet<String>]) -> (f64, f64) {
    let mut eval = MultiLabelEval::default();
    for (g, p) in gold.iter().zip(predicted) {
        eval.add(g, p);
    }
    (eval.micro().f1, eval.macro_supported().f1)
}

fn over(concepts: &[String], probs: &[f32], thresholds: &[f32]) -> BTreeSet<String> {
    concepts
        .iter()
        .zip(probs)
        .zip(thresholds)
        .filter(|((_, p), t)| **p >= **t)
        .map(|((c, _), _)| c.clone())
        .collect()
}

/// The test tables and the metrics for the manifest.
pub fn evaluate(
    fusion: &FusionTagger,
    text_threshold: f32,
    image_config: &ImageModelConfig,
    test: &SplitData,
    split: &str,
) -> Result<(String, BTreeMap<String, f64>)> {
    let concepts = &fusion.config.concepts;
    let thresholds = &fusion.config.thresholds;
    let text_thresholds = vec![text_threshold; concepts.len()];
    // Image model thresholds on the concept axis; concepts it does not
    // score are never predicted by it.
    let mut image_thresholds = vec![f32::INFINITY; concepts.len()];
    for (o, t) in image_config.outputs.iter().zip(&image_config.thresholds) {
        if let Some(c) = concepts.iter().position(|c| c == o) {
            image_thresholds[c] = *t;
        }
    }
    let image_probs = |e: &Example| -> Vec<f32> {
        let (_, logits) = e.image.as_ref().expect("an image");
        let mut p = vec![0.0; concepts.len()];
        for (o, l) in image_config.outputs.iter().zip(logits) {
            if let Some(c) = concepts.iter().position(|c| c == o) {
                p[c] = sigmoid(f64::from(*l)) as f32;
            }
        }
        p
    };
    let text_probs = |e: &Example| -> Vec<f32> {
        e.text
            .as_ref()
            .expect("a report")
            .iter()
            .map(|&l| sigmoid(f64::from(l)) as f32)
            .collect()
    };
    let mut metrics = BTreeMap::new();
    let mut md = String::new();

    // Reports alone.
    let fused = probabilities(&fusion.model, &test.reports)?;
    let text_sets: Vec<_> = test
        .reports
        .iter()
        .map(|e| over(concepts, &text_probs(e), &text_thresholds))
        .collect();
    let fused_sets: Vec<_> = fused
        .iter()
        .map(|p| over(concepts, p, thresholds))
        .collect();
    let (tm, ta) = f1s(&test.report_gold, &text_sets);
    let (fm, fa) = f1s(&test.report_gold, &fused_sets);
    let _ = writeln!(
        md,
        "Reports alone (OpenI {split}, {} reports), against the manual coding:\n\n| model | micro-F1 | macro-F1 |\n|---|---|---|\n| report model | {tm:.3} | {ta:.3} |\n| fusion, text only | {fm:.3} | {fa:.3} |\n",
        test.reports.len()
    );
    metrics.insert(format!("{split} text-only micro-f1"), fm);
    metrics.insert(format!("{split} text-only micro-f1 report model"), tm);

    // Images alone: ROC-AUC per shared concept.
    let fused = probabilities(&fusion.model, &test.images)?;
    let _ = writeln!(
        md,
        "Images alone (NIH {split}, {} images), ROC-AUC:\n\n| concept | positives | image model | fusion, image only |\n|---|---|---|---|",
        test.images.len()
    );
    let (mut sum_image, mut sum_fused, mut n) = (0.0, 0.0, 0);
    for (c, concept) in concepts.iter().enumerate() {
        if test.images.first().is_none_or(|e| e.mask[c] == 0.0) {
            continue;
        }
        let pairs = |p: &dyn Fn(usize) -> f32| -> Vec<(f32, bool)> {
            test.images
                .iter()
                .enumerate()
                .map(|(i, e)| (p(i), e.labels[c] > 0.5))
                .collect()
        };
        let positives = test.images.iter().filter(|e| e.labels[c] > 0.5).count();
        let image = roc_auc(&pairs(&|i| image_probs(&test.images[i])[c]));
        let fusedauc = roc_auc(&pairs(&|i| fused[i][c]));
        if let (Some(a), Some(b)) = (image, fusedauc) {
            let _ = writeln!(md, "| {concept} | {positives} | {a:.3} | {b:.3} |");
            sum_image += a;
            sum_fused += b;
            n += 1;
        }
    }
    let (mi, mf) = (sum_image / n.max(1) as f64, sum_fused / n.max(1) as f64);
    let _ = writeln!(md, "| mean of {n} | | {mi:.3} | {mf:.3} |\n");
    metrics.insert(format!("{split} image-only mean roc-auc"), mf);
    metrics.insert(format!("{split} image-only mean roc-auc image model"), mi);

    // Pairs, constructed and real: each model alone and fused.
    let is_shared = |c: &String| {
        concepts
            .iter()
            .position(|x| x == c)
            .is_some_and(|i| image_thresholds[i].is_finite())
    };
    let sets = |probs: &[Vec<f32>], t: &[f32], only_shared: bool| -> Vec<BTreeSet<String>> {
        probs
            .iter()
            .map(|p| {
                let mut s = over(concepts, p, t);
                s.retain(|c| !only_shared || is_shared(c));
                s
            })
            .collect()
    };
    let kinds = [
        (
            format!("Constructed pairs (NIH {split} image + OpenI {split} report with the same findings among the 14 shared concepts; {} pairs)", test.pairs.len()),
            "pairs",
            &test.pairs,
            &test.pair_gold,
        ),
        (
            format!("Real OpenI pairs ({split} reports with their own images; {})", test.real.len()),
            "real pairs",
            &test.real,
            &test.real_gold,
        ),
    ];
    for (title, key, pairs, gold) in kinds {
        if pairs.is_empty() {
            continue;
        }
        let shared_gold: Vec<BTreeSet<String>> = gold
            .iter()
            .map(|g| g.iter().filter(|c| is_shared(c)).cloned().collect())
            .collect();
        let _ = writeln!(
            md,
            "{title}:\n\n| model | micro-F1, all concepts | micro-F1, 14 shared concepts |\n|---|---|---|"
        );
        let text_p: Vec<Vec<f32>> = pairs.iter().map(text_probs).collect();
        let image_p: Vec<Vec<f32>> = pairs.iter().map(image_probs).collect();
        let fused = probabilities(&fusion.model, pairs)?;
        for (name, probs, t) in [
            ("report model", &text_p, text_thresholds.as_slice()),
            ("image model", &image_p, image_thresholds.as_slice()),
            ("fusion, both", &fused, thresholds.as_slice()),
        ] {
            let (all, _) = f1s(gold, &sets(probs, t, false));
            let (shared, _) = f1s(&shared_gold, &sets(probs, t, true));
            let _ = writeln!(md, "| {name} | {all:.3} | {shared:.3} |");
            let name = name.replace(", ", " ");
            metrics.insert(format!("{split} {key} micro-f1 {name}"), all);
            metrics.insert(format!("{split} {key} shared micro-f1 {name}"), shared);
        }
        let _ = writeln!(md);
        metrics.insert(format!("{split} {key}"), pairs.len() as f64);
    }
    Ok((md, metrics))
}
