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
    let config = BertConfig::from_json(
        &std::fs::read_to_string(&config_path)
            .with_context(|| format!("cannot read {}", config_path.display()))?,
    )?;
    Ok(Checkpoint {
        config,
        tensors: load_tensors(dir, device)?,
        tokenizer: load_tokenizer(dir)?,
    })
}
