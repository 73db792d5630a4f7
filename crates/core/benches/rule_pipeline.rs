//! Latency of the rule pipeline on a typical OpenI report (about 60 words) and
//! on a long one (about 10,000 characters). Results: BENCHMARKS.md.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use integrabner_core::RulePipeline;

/// Shared with the browser benchmark (tests/browser/bench.mjs), so that the
/// wasm/native ratio compares the same input.
const TYPICAL: &str = include_str!("reports/typical.txt");

fn bench(c: &mut Criterion) {
    let pipeline = RulePipeline::embedded();
    c.bench_function("rule pipeline, typical report", |b| {
        b.iter(|| pipeline.predict("r", black_box(TYPICAL)).unwrap())
    });
    let long = TYPICAL.repeat(10_000 / TYPICAL.len() + 1);
    c.bench_function("rule pipeline, 10k-char report", |b| {
        b.iter(|| pipeline.predict("r", black_box(&long)).unwrap())
    });
    c.bench_function("load embedded vocabulary and rules", |b| {
        b.iter(RulePipeline::embedded)
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
