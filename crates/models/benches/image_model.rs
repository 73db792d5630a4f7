//! Latency of the image model (the shipped bundle in `models/image`,
//! dequantized at load as in the browser) on one NIH radiograph (512 × 512
//! PNG, the browser bench's image): decoding, preprocessing with the encoder
//! and head, the case entry point with findings and heat maps, and loading
//! the bundle; and a ResNet-50 image model with random weights, for its
//! latency. Results: BENCHMARKS.md.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use integrabner_core::image_input::decode;
use integrabner_core::RulePipeline;
use integrabner_models::engine::Engine;
use integrabner_models::image_model::ImageTagger;
use std::path::Path;

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let read = |path: &str| std::fs::read(root.join(path)).expect("committed or in ../shared");
    let (config, weights) = (
        read("models/image/config.json"),
        read("models/image/model.gguf"),
    );
    let png = read("../shared/data/nih-cxr/images/00000061_012.png");
    let image = ImageTagger::from_bytes(&config, &weights).unwrap();
    let views = [integrabner_core::image_input::read(&png).unwrap()];
    // As predict does: the analysis and its output object.
    let case = |engine: &Engine| {
        let analysed = engine.analyse("i", "", black_box(&views)).unwrap();
        engine.prediction(analysed, true)
    };
    let resnet = ImageTagger::random_resnet50(&image.config, 1).unwrap();
    let engine = Engine::new(RulePipeline::embedded(), None, Some(image), None).unwrap();

    let mut group = c.benchmark_group("image");
    group.sample_size(20);
    group.bench_function(
        "image model, EfficientNet-Lite0 224 px (decoded image)",
        |b| b.iter(|| case(&engine)),
    );
    group.bench_function("decode 512 x 512 PNG", |b| {
        b.iter(|| decode(black_box(&png)).unwrap())
    });
    group.bench_function("image model, load bundle (dequantize)", |b| {
        b.iter(|| ImageTagger::from_bytes(&config, &weights).unwrap())
    });

    // ResNet-50 with random weights (none pretrained exists here): the same
    // arithmetic as a trained one, so the same time.
    let engine = Engine::new(RulePipeline::embedded(), None, Some(resnet), None).unwrap();
    group.sample_size(10);
    group.bench_function("image model, ResNet-50 224 px (decoded image)", |b| {
        b.iter(|| case(&engine))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
