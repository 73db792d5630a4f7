//! Latency of the report model (the shipped Q8_0 bundle in `models/text`,
//! dequantized at load as in the browser): a report of OpenI's median length
//! (the issue's "typical report, about 60 tokens"), a longer typical report
//! (the same text as the rule-pipeline bench), a report of about 512 word
//! pieces, and loading the bundle. The browser bench uses the same texts.
//! Results: BENCHMARKS.md.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use integrabner_core::RulePipeline;
use integrabner_models::engine::Engine;
use integrabner_models::report::ReportTagger;
use std::path::Path;

const TYPICAL: &str = include_str!("../../core/benches/reports/typical.txt");
const MEDIAN: &str = include_str!("../../core/benches/reports/median.txt");

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/text");
    let read = |name: &str| std::fs::read(dir.join(name)).expect("models/text is committed");
    let (config, weights, tokenizer) = (
        read("config.json"),
        read("model.gguf"),
        read("tokenizer.json"),
    );
    let tagger = ReportTagger::from_bytes(&config, &weights, &tokenizer).unwrap();
    let pieces = |text: &str| {
        let doc = integrabner_core::doc::Doc::new(text);
        let words: Vec<&str> = doc
            .tokens
            .iter()
            .map(|t| &doc.text[t.bytes.clone()])
            .collect();
        tagger.tokenizer.encode_words(&words).unwrap().ids.len()
    };
    eprintln!("median report: {} word pieces", pieces(MEDIAN));
    eprintln!("typical report: {} word pieces", pieces(TYPICAL));
    let mut long = TYPICAL.to_string();
    while pieces(&long) < 512 {
        long.push(' ');
        long.push_str(TYPICAL);
    }
    eprintln!("long report: {} word pieces", pieces(&long));
    let engine = Engine::new(RulePipeline::embedded(), Some(tagger), None, None).unwrap();
    // As predict does: the analysis and its output object.
    let predict = |text: &str| {
        let case = engine.analyse("r", black_box(text), &[]).unwrap();
        engine.prediction(case, true)
    };

    c.bench_function("report model, median report", |b| {
        b.iter(|| predict(MEDIAN))
    });
    c.bench_function("report model, typical report", |b| {
        b.iter(|| predict(TYPICAL))
    });
    let mut group = c.benchmark_group("slow");
    group.sample_size(20);
    group.bench_function("report model, 512-piece report", |b| {
        b.iter(|| predict(&long))
    });
    group.bench_function("report model, load bundle (dequantize)", |b| {
        b.iter(|| ReportTagger::from_bytes(&config, &weights, &tokenizer).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
