//! The training loop on a tiny random BERT: it learns, it is reproducible
//! from its seed, and an interrupted run resumes where it stopped.

use integrabner_models::iob::Sentence;
use integrabner_train::ner::{train, EpochRecord, NerModel, Outcome, TrainConfig, TrainData};

mod common;
use common::tiny_checkpoint;

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
    assert!(history[19].dev_score > 0.99, "{history:?}");
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
        assert_eq!(a.dev_score, b.dev_score);
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

#[test]
fn the_word_embedding_table_moves_only_when_it_is_trained() {
    let base = tempfile::tempdir().unwrap();
    tiny_checkpoint(base.path());
    let data = corpus();
    let table = |dir: &std::path::Path, name: &str| {
        candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap()
            .remove(name)
            .unwrap()
    };
    let start = table(base.path(), "embeddings.word_embeddings.weight");
    for freeze in [true, false] {
        let out = tempfile::tempdir().unwrap();
        let config = TrainConfig {
            freeze_word_embeddings: freeze,
            ..config(2)
        };
        let data = TrainData {
            train: &data,
            dev: &data[..6],
        };
        finished(train(base.path(), data, out.path(), config, |_| true).unwrap());
        let trained = table(
            &out.path().join("best"),
            "bert.embeddings.word_embeddings.weight",
        );
        let moved = integrabner_models::max_abs_difference(&start, &trained).unwrap();
        assert_eq!(moved == 0.0, freeze, "frozen {freeze}: moved by {moved}");
    }
}
