//! The trainable BERT against candle-transformers' (same names, same
//! numbers) and the property the stock one lacks: gradients everywhere.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use integrabner_core::rng::SplitMix64;
use integrabner_models::token_classifier::{TokenClassifier, TokenClassifierConfig};
use integrabner_models::{Bert, BertConfig};

fn tiny_config() -> BertConfig {
    BertConfig::from_json(
        r#"{"vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 32, "hidden_act": "gelu",
            "max_position_embeddings": 32, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
            "architectures": ["BertModel"], "model_type": "bert"}"#,
    )
    .unwrap()
}

fn inputs(device: &Device) -> (Tensor, Tensor) {
    let ids = Tensor::new(&[[2u32, 7, 9, 11, 3, 0], [2, 5, 6, 3, 0, 0]], device).unwrap();
    let mask = Tensor::new(&[[1u32, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]], device).unwrap();
    (ids, mask)
}

#[test]
fn same_outputs_as_candle_transformers_bert_on_the_same_weights() {
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let ours = Bert::load(vb.clone(), &tiny_config()).unwrap();
    // Every weight now exists in the map (random, LayerNorms at 1/0): move
    // the LayerNorms off their defaults so that they matter.
    for (name, var) in varmap.data().lock().unwrap().iter() {
        if name.contains("LayerNorm") {
            let noise = var.as_tensor().rand_like(-0.5, 0.5).unwrap();
            var.set(&(var.as_tensor() + noise).unwrap()).unwrap();
        }
    }
    let stock_config: candle_transformers::models::bert::Config =
        serde_json::from_value(serde_json::json!({
            "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 32, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "max_position_embeddings": 32, "type_vocab_size": 2,
            "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
            "classifier_dropout": null, "model_type": "bert"
        }))
        .unwrap();
    let stock = candle_transformers::models::bert::BertModel::load(vb, &stock_config).unwrap();
    let (ids, mask) = inputs(&device);
    let a = ours.forward(&ids, &mask, None).unwrap();
    let b = stock
        .forward(&ids, &ids.zeros_like().unwrap(), Some(&mask))
        .unwrap();
    let diff = integrabner_models::max_abs_difference(&a, &b).unwrap();
    assert!(diff < 1e-4, "{diff}");
}

#[test]
fn every_trainable_variable_receives_a_gradient() {
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let config = TokenClassifierConfig {
        bert: tiny_config(),
        labels: vec!["O".into(), "B-Disease".into(), "I-Disease".into()],
    };
    let model = TokenClassifier::load(
        VarBuilder::from_varmap(&varmap, DType::F32, &device),
        &config,
    )
    .unwrap();
    let (ids, mask) = inputs(&device);
    let mut rng = SplitMix64::new(1);
    let logits = model.forward(&ids, &mask, Some(&mut rng)).unwrap();
    let targets = Tensor::new(&[0u32, 1, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0], &device).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits.reshape((12, 3)).unwrap(), &targets).unwrap();
    let grads = loss.backward().unwrap();
    let vars: Vec<(String, Var)> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    assert!(vars.len() > 30, "{} variables", vars.len());
    for (name, var) in vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name} got no gradient"));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(norm > 0.0, "{name} has a zero gradient");
    }
}

#[test]
fn dropout_is_seeded_and_off_in_evaluation() {
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let bert = Bert::load(
        VarBuilder::from_varmap(&varmap, DType::F32, &device),
        &tiny_config(),
    )
    .unwrap();
    let (ids, mask) = inputs(&device);
    let run = |seed: Option<u64>| {
        let mut rng = seed.map(SplitMix64::new);
        bert.forward(&ids, &mask, rng.as_mut())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(run(None), run(None));
    assert_eq!(run(Some(3)), run(Some(3)));
    assert_ne!(run(Some(3)), run(Some(4)));
    assert_ne!(run(None), run(Some(3)));
}
