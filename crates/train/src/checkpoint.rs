//! Reading a Hugging Face BERT checkpoint directory: `config.json`, weights in
//! `model.safetensors` or `pytorch_model.bin` (or our quantized `model.gguf`), and `tokenizer.json` or only
//! `vocab.txt` (with `tokenizer_config.json`'s `do_lower_case` if present).
//!
//! Parameter names are normalized to `BertForTokenClassification`'s layout:
//! `bert.` prefix added where missing (all-MiniLM has none), TensorFlow-era
//! `LayerNorm.gamma`/`beta` renamed to `weight`/`bias`, pre-training heads
//! (`cls.*`) and the pooler dropped.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use integrabner_models::tokenizer::BertTokenizer;
use integrabner_models::BertConfig;
use std::collections::HashMap;
use std::path::Path;

pub struct Checkpoint {
    pub config: BertConfig,
    pub tensors: HashMap<String, Tensor>,
    pub tokenizer: BertTokenizer,
}

impl Checkpoint {
    /// Keeps the encoder's bottom `layers` layers and drops the rest: a
    /// shallower model of the same width that fine-tunes into a faster one
    /// (dropping the top layers loses the least, Sajjad et al. 2023).
    pub fn keep_bottom_layers(&mut self, layers: usize) -> Result<()> {
        let total = self.config.num_hidden_layers;
        if layers == 0 || layers > total {
            bail!("--layers must be between 1 and the checkpoint's {total} layers, not {layers}");
        }
        self.config.num_hidden_layers = layers;
        self.tensors
            .retain(|name, _| layer_of(name).is_none_or(|i| i < layers));
        Ok(())
    }

    /// Keeps `width` of the feed-forward neurons of every layer, those with
    /// the largest product of input-row and output-column norms (a neuron
    /// with a small one barely moves the layer's output), in their original
    /// order: the same depth at less work per token. The feed-forward
    /// products are two thirds of a BERT layer's multiply-adds; at half the
    /// width the encoder does two thirds of its work. The result is a plain
    /// BERT with a smaller `intermediate_size`, which fine-tunes to recover.
    pub fn narrow_feed_forward(&mut self, width: usize) -> Result<()> {
        let total = self.config.intermediate_size;
        if width == 0 || width > total {
            bail!(
                "--feed-forward-width must be between 1 and the checkpoint's {total}, not {width}"
            );
        }
        for layer in 0..self.config.num_hidden_layers {
            let prefix = format!("bert.encoder.layer.{layer}");
            let names = [
                format!("{prefix}.intermediate.dense.weight"),
                format!("{prefix}.intermediate.dense.bias"),
                format!("{prefix}.output.dense.weight"),
            ];
            let [w_in, b_in, w_out] = names.each_ref().map(|n| self.tensors.get(n));
            let (Some(w_in), Some(b_in), Some(w_out)) = (w_in, b_in, w_out) else {
                bail!("the checkpoint has no feed-forward weights for layer {layer}");
            };
            let score: Vec<f32> =
                (w_in.sqr()?.sum(1)?.sqrt()? * w_out.sqr()?.sum(0)?.sqrt()?)?.to_vec1()?;
            let mut kept: Vec<u32> = (0..total as u32).collect();
            kept.sort_by(|&a, &b| score[b as usize].total_cmp(&score[a as usize]));
            kept.truncate(width);
            kept.sort_unstable();
            let kept = Tensor::new(kept.as_slice(), w_in.device())?;
            let narrowed = [
                w_in.index_select(&kept, 0)?,
                b_in.index_select(&kept, 0)?,
                w_out.index_select(&kept, 1)?,
            ];
            for (name, tensor) in names.into_iter().zip(narrowed) {
                self.tensors.insert(name, tensor);
            }
        }
        self.config.intermediate_size = width;
        Ok(())
    }
}

/// The encoder layer a parameter belongs to (`bert.encoder.layer.3.…` → 3).
fn layer_of(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("bert.encoder.layer.")?;
    rest.split('.').next()?.parse().ok()
}

pub fn normalize_name(name: &str) -> Option<String> {
    if name.starts_with("cls.") || name.contains("pooler.") {
        return None;
    }
    let name = name
        .replace("LayerNorm.gamma", "LayerNorm.weight")
        .replace("LayerNorm.beta", "LayerNorm.bias");
    if name.starts_with("embeddings.") || name.starts_with("encoder.") {
        Some(format!("bert.{name}"))
    } else {
        Some(name)
    }
}

pub fn load_tensors(dir: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let safetensors = dir.join("model.safetensors");
    let pth = dir.join("pytorch_model.bin");
    let gguf = dir.join("model.gguf");
    if gguf.exists() {
        let bytes =
            std::fs::read(&gguf).with_context(|| format!("cannot read {}", gguf.display()))?;
        return tensors_from_gguf(&bytes, device);
    }
    // `from_gguf` checks its tensors itself; these formats are checked here.
    let raw: Vec<(String, Tensor)> = if safetensors.exists() {
        candle_core::safetensors::load(&safetensors, device)
            .with_context(|| format!("cannot read {}", safetensors.display()))?
            .into_iter()
            .collect()
    } else if pth.exists() {
        candle_core::pickle::read_all(&pth)
            .with_context(|| format!("cannot read {}", pth.display()))?
    } else {
        bail!(
            "{} has no model.safetensors, pytorch_model.bin or model.gguf",
            dir.display()
        );
    };
    let tensors = normalized(raw, device)?;
    for (name, tensor) in &tensors {
        integrabner_models::quantized::check_finite(name, tensor)?;
    }
    Ok(tensors)
}

/// The tensors of GGUF bytes (a shipped model's `model.gguf`), named as
/// `load_tensors` names them.
pub fn tensors_from_gguf(bytes: &[u8], device: &Device) -> Result<HashMap<String, Tensor>> {
    normalized(
        integrabner_models::quantized::from_gguf(bytes, device)?.0,
        device,
    )
}

/// Tensors under their normalized names, as f32 on `device`.
fn normalized(
    raw: impl IntoIterator<Item = (String, Tensor)>,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut tensors = HashMap::new();
    for (name, tensor) in raw {
        if let Some(name) = normalize_name(&name) {
            tensors.insert(name, tensor.to_dtype(DType::F32)?.to_device(device)?);
        }
    }
    Ok(tensors)
}

pub fn load_tokenizer(dir: &Path) -> Result<BertTokenizer> {
    let json = dir.join("tokenizer.json");
    if json.exists() {
        return Ok(BertTokenizer::from_tokenizer_json(&std::fs::read(&json)?)?);
    }
    let vocab = dir.join("vocab.txt");
    let text = std::fs::read_to_string(&vocab)
        .with_context(|| format!("{} has neither tokenizer.json nor vocab.txt", dir.display()))?;
    let lowercase = std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["do_lower_case"].as_bool())
        .unwrap_or(true);
    Ok(BertTokenizer::from_vocab(&text, lowercase)?)
}

pub fn load(dir: &Path, device: &Device) -> Result<Checkpoint> {
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    // A model trained here keeps its encoder's configuration under "bert".
    let bert = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("bert").map(|b| b.to_string()));
    let config = BertConfig::from_json(bert.as_deref().unwrap_or(&text))?;
    Ok(Checkpoint {
        config,
        tensors: load_tensors(dir, device)?,
        tokenizer: load_tokenizer(dir)?,
    })
}

/// The element-wise mean of several fine-tuned models' weights (a "model
/// soup", Wortsman et al. 2022). Runs fine-tuned from the same starting
/// checkpoint with the same head initialization (same seed) stay in one basin
/// of the loss, so their mean is itself a model and often better than each;
/// for anything else it is noise, so every model must have the same
/// `config.json` and the same tensor names and shapes.
pub fn average_models(
    dirs: &[impl AsRef<Path>],
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let Some((first, rest)) = dirs.split_first().filter(|(_, rest)| !rest.is_empty()) else {
        bail!("averaging needs at least two models");
    };
    let config_of = |dir: &Path| -> Result<serde_json::Value> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
    };
    let config = config_of(first.as_ref())?;
    let mut sum = load_tensors(first.as_ref(), device)?;
    for dir in rest {
        let dir = dir.as_ref();
        if config_of(dir)? != config {
            bail!(
                "{} has another config.json than {}",
                dir.display(),
                first.as_ref().display()
            );
        }
        let tensors = load_tensors(dir, device)?;
        if tensors.len() != sum.len() {
            bail!(
                "{} has {} tensors, {} has {}",
                dir.display(),
                tensors.len(),
                first.as_ref().display(),
                sum.len()
            );
        }
        for (name, tensor) in tensors {
            let total = sum.get_mut(&name).with_context(|| {
                format!("{} has {name}, the first model has not", dir.display())
            })?;
            if total.dims() != tensor.dims() {
                bail!(
                    "{name}: shape {:?} in {}, {:?} in the first model",
                    tensor.dims(),
                    dir.display(),
                    total.dims()
                );
            }
            *total = (&*total + tensor)?;
        }
    }
    let n = dirs.len() as f64;
    sum.into_iter()
        .map(|(name, total)| Ok((name, (total / n)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeping_bottom_layers_drops_the_top_ones_and_nothing_else() {
        let config = BertConfig::from_json(
            r#"{"vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 6,
                "num_attention_heads": 2, "intermediate_size": 8}"#,
        )
        .unwrap();
        let names = [
            "bert.embeddings.word_embeddings.weight",
            "bert.encoder.layer.0.output.dense.weight",
            "bert.encoder.layer.2.attention.self.query.bias",
            "bert.encoder.layer.3.output.dense.weight",
            "bert.encoder.layer.5.output.LayerNorm.weight",
            "entity_classifier.weight",
        ];
        let one = Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap();
        let mut ckpt = Checkpoint {
            config,
            tensors: names.iter().map(|n| (n.to_string(), one.clone())).collect(),
            tokenizer: BertTokenizer::from_vocab("[PAD]\n[UNK]\n[CLS]\n[SEP]\na\n", true).unwrap(),
        };
        assert!(ckpt.keep_bottom_layers(7).is_err());
        assert!(ckpt.keep_bottom_layers(0).is_err());
        ckpt.keep_bottom_layers(3).unwrap();
        assert_eq!(ckpt.config.num_hidden_layers, 3);
        let mut kept: Vec<&str> = ckpt.tensors.keys().map(String::as_str).collect();
        kept.sort();
        assert_eq!(
            kept,
            [
                "bert.embeddings.word_embeddings.weight",
                "bert.encoder.layer.0.output.dense.weight",
                "bert.encoder.layer.2.attention.self.query.bias",
                "entity_classifier.weight",
            ]
        );
    }

    /// A random two-layer BERT, hidden 8, feed-forward 12, with the output
    /// weights of `silent` feed-forward neurons set to zero in every layer.
    fn random_encoder(silent: &[usize]) -> Checkpoint {
        let config = BertConfig::from_json(
            r#"{"vocab_size": 6, "hidden_size": 8, "num_hidden_layers": 2,
                "num_attention_heads": 2, "intermediate_size": 12, "max_position_embeddings": 8}"#,
        )
        .unwrap();
        let mut rng = integrabner_core::rng::SplitMix64::new(3);
        let mut random = |shape: &[usize]| {
            let n = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|_| rng.next_normal() * 0.5).collect();
            Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
        };
        let mut tensors = HashMap::new();
        for (name, shape) in [
            ("word_embeddings.weight", &[6, 8][..]),
            ("position_embeddings.weight", &[8, 8]),
            ("token_type_embeddings.weight", &[2, 8]),
            ("LayerNorm.weight", &[8]),
            ("LayerNorm.bias", &[8]),
        ] {
            tensors.insert(format!("bert.embeddings.{name}"), random(shape));
        }
        for layer in 0..2 {
            for (name, shape) in [
                ("attention.self.query", [8, 8]),
                ("attention.self.key", [8, 8]),
                ("attention.self.value", [8, 8]),
                ("attention.output.dense", [8, 8]),
                ("intermediate.dense", [12, 8]),
                ("output.dense", [8, 12]),
                ("attention.output.LayerNorm", [8, 0]),
                ("output.LayerNorm", [8, 0]),
            ] {
                let (weight, bias) = if shape[1] == 0 {
                    (random(&[8]), random(&[8]))
                } else {
                    (random(&shape), random(&[shape[0]]))
                };
                let prefix = format!("bert.encoder.layer.{layer}.{name}");
                tensors.insert(format!("{prefix}.weight"), weight);
                tensors.insert(format!("{prefix}.bias"), bias);
            }
            let name = format!("bert.encoder.layer.{layer}.output.dense.weight");
            let mut mask = vec![1f32; 12];
            for &n in silent {
                mask[n] = 0.0;
            }
            let mask = Tensor::new(mask, &Device::Cpu).unwrap();
            let silenced = tensors[&name].broadcast_mul(&mask).unwrap();
            tensors.insert(name, silenced);
        }
        Checkpoint {
            config,
            tensors,
            tokenizer: BertTokenizer::from_vocab("[PAD]\n[UNK]\n[CLS]\n[SEP]\na\nb\n", true)
                .unwrap(),
        }
    }

    fn encode(ckpt: &Checkpoint) -> Vec<f32> {
        let vb =
            candle_nn::VarBuilder::from_tensors(ckpt.tensors.clone(), DType::F32, &Device::Cpu);
        let bert = integrabner_models::Bert::load(vb.pp("bert"), &ckpt.config).unwrap();
        let ids = Tensor::new(&[[2u32, 4, 5, 4, 3]], &Device::Cpu).unwrap();
        let mask = Tensor::ones((1, 5), DType::U32, &Device::Cpu).unwrap();
        bert.forward(&ids, &mask, None)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn narrowing_the_feed_forward_drops_the_weakest_neurons_and_keeps_the_output() {
        let silent = [1, 4, 6, 10];
        let full = random_encoder(&silent);
        let before = encode(&full);
        let mut narrow = random_encoder(&silent);
        assert!(narrow.narrow_feed_forward(13).is_err());
        assert!(narrow.narrow_feed_forward(0).is_err());
        narrow.narrow_feed_forward(8).unwrap();
        assert_eq!(narrow.config.intermediate_size, 8);
        let w_out = &narrow.tensors["bert.encoder.layer.1.output.dense.weight"];
        assert_eq!(w_out.dims(), [8, 8]);
        // The silent neurons were the ones dropped: the encoder computes the same.
        let after = encode(&narrow);
        let worst = before
            .iter()
            .zip(&after)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-5, "largest difference {worst}");
        // The kept neurons stay in their order: the first kept input row is neuron 0's.
        let full_row = full.tensors["bert.encoder.layer.0.intermediate.dense.weight"]
            .get(0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let narrow_row = narrow.tensors["bert.encoder.layer.0.intermediate.dense.weight"]
            .get(0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(full_row, narrow_row);
    }

    #[test]
    fn averaging_takes_the_mean_and_refuses_different_models() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, values: &[f32], config: &str| {
            let model = dir.path().join(name);
            std::fs::create_dir_all(&model).unwrap();
            std::fs::write(model.join("config.json"), config).unwrap();
            let t = Tensor::new(values, &Device::Cpu).unwrap();
            candle_core::safetensors::save(
                &HashMap::from([("classifier.weight".to_string(), t)]),
                model.join("model.safetensors"),
            )
            .unwrap();
            model
        };
        let a = write("a", &[1.0, 2.0], r#"{"labels": ["O"]}"#);
        let b = write("b", &[3.0, -2.0], r#"{"labels": ["O"]}"#);
        let mean = average_models(&[&a, &b], &Device::Cpu).unwrap();
        let values: Vec<f32> = mean["classifier.weight"].to_vec1().unwrap();
        assert_eq!(values, [2.0, 0.0]);
        let other_config = write("c", &[0.0, 0.0], r#"{"labels": ["O", "B-X"]}"#);
        let err = average_models(&[&a, &other_config], &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("another config.json"), "{err}");
        let other_shape = write("d", &[0.0, 0.0, 0.0], r#"{"labels": ["O"]}"#);
        let err = average_models(&[&a, &other_shape], &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("shape"), "{err}");
    }
}
