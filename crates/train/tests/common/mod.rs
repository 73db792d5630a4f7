//! A tiny random BERT checkpoint for the training tests.

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

const VOCAB: &[&str] = &[
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "no",
    "pleural",
    "effusion",
    "heart",
    "is",
    "normal",
    "cancer",
    "the",
    ".",
    "findings",
    "impression",
    ":",
    "cardiomegaly",
    "possible",
    "pneumonia",
];

/// A random one-layer BERT (hidden 16) with a `vocab.txt` of report words.
pub fn tiny_checkpoint(dir: &Path) {
    std::fs::write(dir.join("vocab.txt"), VOCAB.join("\n")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        r#"{"vocab_size": 19, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 32, "max_position_embeddings": 64}"#,
    )
    .unwrap();
    let device = Device::Cpu;
    let mut seed = 7u32;
    let mut random = |shape: &[usize]| {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                ((seed >> 16) as f32 / 65_536.0 - 0.5) * 0.2
            })
            .collect();
        Tensor::from_vec(data, shape, &device).unwrap()
    };
    let mut t = HashMap::new();
    t.insert(
        "embeddings.word_embeddings.weight".to_string(),
        random(&[19, 16]),
    );
    t.insert(
        "embeddings.position_embeddings.weight".into(),
        random(&[64, 16]),
    );
    t.insert(
        "embeddings.token_type_embeddings.weight".into(),
        random(&[2, 16]),
    );
    let l = "encoder.layer.0";
    for (name, shape) in [
        ("attention.self.query", [16, 16]),
        ("attention.self.key", [16, 16]),
        ("attention.self.value", [16, 16]),
        ("attention.output.dense", [16, 16]),
        ("intermediate.dense", [32, 16]),
        ("output.dense", [16, 32]),
    ] {
        t.insert(format!("{l}.{name}.weight"), random(&shape));
        t.insert(format!("{l}.{name}.bias"), random(&[shape[0]]));
    }
    for norm in [
        "embeddings.LayerNorm",
        "encoder.layer.0.attention.output.LayerNorm",
        "encoder.layer.0.output.LayerNorm",
    ] {
        t.insert(
            format!("{norm}.weight"),
            Tensor::ones(16, DType::F32, &device).unwrap(),
        );
        t.insert(
            format!("{norm}.bias"),
            Tensor::zeros(16, DType::F32, &device).unwrap(),
        );
    }
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).unwrap();
}
