//! Checkpoints in the layouts users have: Bio_ClinicalBERT's exact layout
//! (config.json, pytorch_model.bin, vocab.txt only; `bert.` prefix;
//! TensorFlow-era `LayerNorm.gamma/beta`; pre-training heads), and a
//! torchvision ResNet `.pth` saved from `DataParallel`; each loads and gives
//! the same numbers as the same weights in safetensors form.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use integrabner_models::token_classifier::{TokenClassifier, TokenClassifierConfig};
use integrabner_train::checkpoint;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

const CONFIG: &str = r#"{"architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1,
  "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 8,
  "initializer_range": 0.02, "intermediate_size": 16, "layer_norm_eps": 1e-12,
  "max_position_embeddings": 16, "model_type": "bert", "num_attention_heads": 2,
  "num_hidden_layers": 1, "type_vocab_size": 2, "vocab_size": 12}"#;

const VOCAB: &str =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nno\npleural\neffusion\nef\n##fusion\nPleural\n.\n";

/// Names and shapes of a BERT with hidden 8, one layer, as TF-converted
/// checkpoints name them.
fn shapes() -> Vec<(String, Vec<usize>)> {
    let mut out = vec![
        (
            "bert.embeddings.word_embeddings.weight".to_string(),
            vec![12, 8],
        ),
        (
            "bert.embeddings.position_embeddings.weight".into(),
            vec![16, 8],
        ),
        (
            "bert.embeddings.token_type_embeddings.weight".into(),
            vec![2, 8],
        ),
        ("bert.embeddings.LayerNorm.gamma".into(), vec![8]),
        ("bert.embeddings.LayerNorm.beta".into(), vec![8]),
        ("bert.pooler.dense.weight".into(), vec![8, 8]),
        ("cls.predictions.bias".into(), vec![12]),
    ];
    let l = "bert.encoder.layer.0";
    for (name, shape) in [
        ("attention.self.query", vec![8, 8]),
        ("attention.self.key", vec![8, 8]),
        ("attention.self.value", vec![8, 8]),
        ("attention.output.dense", vec![8, 8]),
        ("intermediate.dense", vec![16, 8]),
        ("output.dense", vec![8, 16]),
    ] {
        out.push((format!("{l}.{name}.weight"), shape.clone()));
        out.push((format!("{l}.{name}.bias"), vec![shape[0]]));
    }
    for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
        out.push((format!("{l}.{norm}.gamma"), vec![8]));
        out.push((format!("{l}.{norm}.beta"), vec![8]));
    }
    out
}

/// Writes PyTorch's zip serialization: `archive/data.pkl` (protocol 2) with
/// an OrderedDict of `_rebuild_tensor_v2` calls, and one storage file each.
fn write_pth(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    fn text(out: &mut Vec<u8>, s: &str) {
        out.push(b'X');
        out.extend((s.len() as u32).to_le_bytes());
        out.extend(s.as_bytes());
    }
    fn int(out: &mut Vec<u8>, v: usize) {
        out.push(b'J');
        out.extend((v as i32).to_le_bytes());
    }
    fn tuple(out: &mut Vec<u8>, vs: &[usize]) {
        out.push(b'(');
        for &v in vs {
            int(out, v);
        }
        out.push(b't');
    }
    let mut pkl = vec![0x80, 2];
    pkl.extend(b"ccollections\nOrderedDict\n)R(");
    for (i, (name, shape, data)) in tensors.iter().enumerate() {
        text(&mut pkl, name);
        pkl.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        pkl.push(b'(');
        text(&mut pkl, "storage");
        pkl.extend(b"ctorch\nFloatStorage\n");
        text(&mut pkl, &i.to_string());
        text(&mut pkl, "cpu");
        int(&mut pkl, data.len());
        pkl.extend(b"tQ");
        int(&mut pkl, 0);
        tuple(&mut pkl, shape);
        let mut strides = vec![1; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * shape[d + 1];
        }
        tuple(&mut pkl, &strides);
        pkl.push(0x89);
        pkl.extend(b"ccollections\nOrderedDict\n)R");
        pkl.extend(b"tR");
    }
    pkl.extend(b"u.");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", stored).unwrap();
    zip.write_all(&pkl).unwrap();
    for (i, (_, _, data)) in tensors.iter().enumerate() {
        zip.start_file(format!("archive/data/{i}"), stored).unwrap();
        for v in data {
            zip.write_all(&v.to_le_bytes()).unwrap();
        }
    }
    zip.start_file("archive/version", stored).unwrap();
    zip.write_all(b"3\n").unwrap();
    zip.finish().unwrap();
}

#[test]
fn a_bio_clinicalbert_layout_checkpoint_loads_and_matches_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = 1u32;
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = shapes()
        .into_iter()
        .map(|(name, shape)| {
            let n = shape.iter().product();
            let data = (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (seed >> 16) as f32 / 65_536.0 - 0.5
                })
                .collect();
            (name, shape, data)
        })
        .collect();
    write_pth(&dir.path().join("pytorch_model.bin"), &tensors);
    std::fs::write(dir.path().join("config.json"), CONFIG).unwrap();
    std::fs::write(dir.path().join("vocab.txt"), VOCAB).unwrap();
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        r#"{"do_lower_case": false}"#,
    )
    .unwrap();

    let device = Device::Cpu;
    let ckpt = checkpoint::load(dir.path(), &device).unwrap();
    assert!(ckpt
        .tensors
        .contains_key("bert.embeddings.LayerNorm.weight"));
    assert!(!ckpt
        .tensors
        .keys()
        .any(|k| k.starts_with("cls.") || k.contains("pooler")));
    for (name, shape, data) in &tensors {
        let Some(normalized) = checkpoint::normalize_name(name) else {
            continue;
        };
        let loaded = &ckpt.tensors[&normalized];
        assert_eq!(loaded.dims(), shape.as_slice(), "{name}");
        assert_eq!(
            &loaded.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            data,
            "{name}"
        );
    }
    // Cased vocabulary: "Pleural" keeps its capital.
    let pieces = ckpt
        .tokenizer
        .encode_words(&["Pleural", "effusion"])
        .unwrap();
    assert_eq!(pieces.ids, vec![10, 7]);

    let config = TokenClassifierConfig {
        bert: ckpt.config.clone(),
        labels: vec!["O".into(), "B-Disease".into()],
    };
    let mut weights = ckpt.tensors.clone();
    weights.insert(
        "classifier.weight".into(),
        Tensor::ones((2, 8), DType::F32, &device).unwrap(),
    );
    weights.insert(
        "classifier.bias".into(),
        Tensor::zeros(2, DType::F32, &device).unwrap(),
    );
    let from_pth = TokenClassifier::load(
        VarBuilder::from_tensors(weights.clone(), DType::F32, &device),
        &config,
    )
    .unwrap();

    // The same weights as a safetensors checkpoint (all-MiniLM's layout: no prefix).
    let unprefixed: HashMap<String, Tensor> = weights
        .iter()
        .map(|(k, v)| (k.strip_prefix("bert.").unwrap_or(k).to_string(), v.clone()))
        .collect();
    let st = tempfile::tempdir().unwrap();
    candle_core::safetensors::save(&unprefixed, st.path().join("model.safetensors")).unwrap();
    let reloaded = checkpoint::load_tensors(st.path(), &device).unwrap();
    let from_st = TokenClassifier::load(
        VarBuilder::from_tensors(reloaded, DType::F32, &device),
        &config,
    )
    .unwrap();

    let ids = Tensor::new(&[[2u32, 10, 7, 3]], &device).unwrap();
    let mask = ids.ones_like().unwrap();
    let a = from_pth.forward(&ids, &mask, None).unwrap();
    let b = from_st.forward(&ids, &mask, None).unwrap();
    assert_eq!(a.dims(), &[1, 4, 2]);
    let diff = integrabner_models::max_abs_difference(&a, &b).unwrap();
    assert!(diff < 1e-6, "{diff}");
}

#[test]
fn a_torchvision_resnet_pth_loads_like_its_safetensors() {
    use integrabner_models::encoder::EncoderConfig;
    use integrabner_models::resnet::{random_weights, ResNetConfig};
    use integrabner_train::image::load_encoder;
    let dir = tempfile::tempdir().unwrap();
    let config = ResNetConfig {
        layers: vec![1, 1, 1, 1],
        width: 4,
        classes: 3,
    };
    let weights = random_weights(&config, 1).unwrap();
    // As `torch.save(model.state_dict())` of a DataParallel model writes it.
    let listed: Vec<(String, Vec<usize>, Vec<f32>)> = weights
        .iter()
        .map(|(name, t)| {
            (
                format!("module.{name}"),
                t.dims().to_vec(),
                t.flatten_all().unwrap().to_vec1().unwrap(),
            )
        })
        .collect();
    let pth = dir.path().join("resnet-small.pth");
    write_pth(&pth, &listed);
    let st = dir.path().join("model.safetensors");
    candle_core::safetensors::save(&weights, &st).unwrap();
    let channels = config.channels();
    let encoder = EncoderConfig::ResNet(config);
    let x = Tensor::rand(0f32, 255.0, (1, 3, 64, 64), &Device::Cpu).unwrap();
    let a = load_encoder(&encoder, &pth)
        .unwrap()
        .feature_maps(&x)
        .unwrap()
        .remove(0);
    let b = load_encoder(&encoder, &st)
        .unwrap()
        .feature_maps(&x)
        .unwrap()
        .remove(0);
    assert_eq!(a.dims(), &[1, channels, 2, 2]);
    let diff = integrabner_models::max_abs_difference(&a, &b).unwrap();
    assert_eq!(diff, 0.0);
}
