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
    let raw: Vec<(String, Tensor)> = if gguf.exists() {
        let bytes =
            std::fs::read(&gguf).with_context(|| format!("cannot read {}", gguf.display()))?;
        integrabner_models::quantized::from_gguf(&bytes, device)?
            .0
            .into_iter()
            .collect()
    } else if safetensors.exists() {
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
}
