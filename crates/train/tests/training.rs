//! The training loop on a tiny random BERT: it learns, it is reproducible
//! from its seed, and an interrupted run resumes where it stopped.

use candle_core::{DType, Device, Tensor};
use integrabner_models::iob::Sentence;
use integrabner_train::ner::{train, EpochRecord, NerModel, Outcome, TrainConfig, TrainData};
use std::collections::HashMap;
use std::path::Path;

const VOCAB: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "no", "pleural", "effusion", "heart", "is", "normal",
    "cancer", "the", ".",
];

fn tiny_checkpoint(dir: &Path) {
    std::fs::write(dir.join("vocab.txt"), VOCAB.join("\n")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        r#"{"vocab_size": 13, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
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
        random(&[13, 16]),
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

fn corpus() -> Vec<Sentence> {
    let s = |words: &[&str], tags: &[&str]| Sentence {
        words: words.iter().map(|w| w.to_string()).collect(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
    };
    let mut out = Vec::new();
    for _ in 0..12 {
        out.push(s(
            &["no", "pleural", "effusion", "."],
            &["O", "B-Disease", "I-Disease", "O"],
        ));
        out.push(s(
            &["the", "heart", "is", "normal", "."],
            &["O", "O", "O", "O", "O"],
        ));
        out.push(s(&["cancer", "."], &["B-Disease", "O"]));
    }
    // One long sentence, so that every position of a window is trained.
    let words: Vec<&str> = ["no", "pleural", "effusion", "."]
        .iter()
        .copied()
        .cycle()
        .take(60)
        .collect();
    let tags: Vec<&str> = ["O", "B-Disease", "I-Disease", "O"]
        .iter()
        .copied()
        .cycle()
        .take(60)
        .collect();
    out.push(s(&words, &tags));
    out
}

fn finished(outcome: Outcome) -> Vec<EpochRecord> {
    match outcome {
        Outcome::Finished(history) => history,
        other => panic!("expected a finished run, got {other:?}"),
    }
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 6,
        learning_rate: 1e-2,
        patience: 100,
        checkpoint_every: 4,
        ..TrainConfig::default()
    }
}

#[test]
fn learns_reproducibly_and_resumes() {
    let base = tempfile::tempdir().unwrap();
    tiny_checkpoint(base.path());
    let data = corpus();
    let train_data = || TrainData {
        train: &data,
        dev: &data[..6],
    };

    let full = tempfile::tempdir().unwrap();
    let history =
        finished(train(base.path(), train_data(), full.path(), config(20), |_| true).unwrap());
    assert_eq!(history.len(), 20);
    assert!(
        history[19].train_loss < history[0].train_loss * 0.2,
        "{history:?}"
    );
    assert!(history[19].dev_f1 > 0.99, "{history:?}");
    let model = NerModel::load(&full.path().join("best")).unwrap();
    let tags = model
        .tag(&data[..1], &indicatif::ProgressBar::hidden())
        .unwrap();
    let tags: Vec<&str> = tags[0].iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(tags, ["O", "B-Disease", "I-Disease", "O"]);
    // A sentence of 200 words spans several overlapping 128-piece windows;
    // every word still gets its tag.
    let long = Sentence {
        words: ["no", "pleural", "effusion", "."]
            .iter()
            .cycle()
            .take(200)
            .map(|w| w.to_string())
            .collect(),
        tags: Vec::new(),
    };
    let tagged = model
        .tag(&[long], &indicatif::ProgressBar::hidden())
        .unwrap();
    assert_eq!(tagged[0].len(), 200);
    let right = tagged[0]
        .iter()
        .enumerate()
        .filter(|(i, (tag, _))| tag == ["O", "B-Disease", "I-Disease", "O"][i % 4])
        .count();
    // A stitching error (a word taking its neighbour's tag) would get about
    // half wrong; the tiny model itself gets a few wrong.
    assert!(right >= 180, "{right} of 200 words tagged right");
    assert!(tagged[0].iter().all(|(_, p)| *p > 0.0 && *p <= 1.0));

    // Interrupted at step 37 (epoch 7 of 20, mid-epoch), then resumed: the
    // same numbers as the uninterrupted run. Other settings are refused.
    let split = tempfile::tempdir().unwrap();
    let cut = train(
        base.path(),
        train_data(),
        split.path(),
        config(20),
        |step| step < 37,
    )
    .unwrap();
    assert_eq!(cut, Outcome::Interrupted { optimizer_step: 37 });
    let err = train(base.path(), train_data(), split.path(), config(21), |_| {
        true
    })
    .unwrap_err();
    assert!(err.to_string().contains("other settings"), "{err}");
    let resumed = finished(
        train(base.path(), train_data(), split.path(), config(20), |_| {
            true
        })
        .unwrap(),
    );
    assert_eq!(resumed.len(), 20);
    for (a, b) in history.iter().zip(&resumed) {
        assert!((a.train_loss - b.train_loss).abs() < 1e-9, "{a:?} vs {b:?}");
        assert_eq!(a.dev_f1, b.dev_f1);
    }

    // Early stopping: once the development F1 stops improving for
    // `patience` epochs, training ends before the epoch budget.
    let early = tempfile::tempdir().unwrap();
    let stopped = finished(
        train(
            base.path(),
            train_data(),
            early.path(),
            TrainConfig {
                patience: 1,
                ..config(20)
            },
            |_| true,
        )
        .unwrap(),
    );
    assert!(stopped.len() < 20, "{} epochs", stopped.len());
}
