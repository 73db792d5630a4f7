//! Compact weight files: GGUF with 8-bit blocks (Q8_0, 32 weights + one f16
//! scale per block) for every matrix whose rows split into blocks, f32 for
//! the rest (biases, LayerNorms). Works on bytes, so the same code reads a
//! bundle natively and in the browser; tensors are dequantized at load,
//! because f32 matmuls are faster than 8-bit ones in wasm.

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Result, Tensor};
use std::collections::HashMap;
use std::io::Cursor;

fn quantize(tensor: &Tensor) -> Result<QTensor> {
    let dims = tensor.dims();
    let blockable = dims.len() >= 2 && dims[dims.len() - 1] % GgmlDType::Q8_0.block_size() == 0;
    QTensor::quantize(
        tensor,
        if blockable {
            GgmlDType::Q8_0
        } else {
            GgmlDType::F32
        },
    )
}

/// Serializes `tensors` (sorted by name, for reproducible bytes) with string metadata.
pub fn to_gguf(tensors: &HashMap<String, Tensor>, metadata: &[(&str, String)]) -> Result<Vec<u8>> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let quantized: Vec<(&str, QTensor)> = names
        .into_iter()
        .map(|n| Ok((n.as_str(), quantize(&tensors[n])?)))
        .collect::<Result<_>>()?;
    let values: Vec<(&str, gguf_file::Value)> = metadata
        .iter()
        .map(|(k, v)| (*k, gguf_file::Value::String(v.clone())))
        .collect();
    let value_refs: Vec<(&str, &gguf_file::Value)> = values.iter().map(|(k, v)| (*k, v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = quantized.iter().map(|(n, q)| (*n, q)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &value_refs, &tensor_refs)?;
    Ok(out.into_inner())
}

/// All tensors of a GGUF file, dequantized to f32, and its string metadata.
pub fn from_gguf(
    bytes: &[u8],
    device: &Device,
) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let mut reader = Cursor::new(bytes);
    let content = gguf_file::Content::read(&mut reader)?;
    let mut tensors = HashMap::new();
    for name in content.tensor_infos.keys() {
        let q = content.tensor(&mut reader, name, device)?;
        tensors.insert(name.clone(), q.dequantize(device)?);
    }
    let metadata = content
        .metadata
        .iter()
        .filter_map(|(k, v)| v.to_string().ok().map(|s| (k.clone(), s.clone())))
        .collect();
    Ok((tensors, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    #[test]
    fn round_trip_keeps_vectors_exact_and_matrices_close() {
        let device = Device::Cpu;
        let mut tensors = HashMap::new();
        let matrix = Tensor::randn(0f32, 1.0, (8, 64), &device).unwrap();
        let bias = Tensor::randn(0f32, 1.0, 8, &device).unwrap();
        tensors.insert("w".to_string(), matrix.clone());
        tensors.insert("b".to_string(), bias.clone());
        let bytes = to_gguf(&tensors, &[("labels", "O,B-X".into())]).unwrap();
        assert!(
            bytes.len() < 8 * 64 * 4 / 2,
            "{} bytes: not quantized",
            bytes.len()
        );
        let (back, meta) = from_gguf(&bytes, &device).unwrap();
        assert_eq!(meta["labels"], "O,B-X");
        assert_eq!(
            back["b"].to_vec1::<f32>().unwrap(),
            bias.to_vec1::<f32>().unwrap()
        );
        let err = (&back["w"] - &matrix)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(err.to_scalar::<f32>().unwrap() < 0.05);
        assert_eq!(back["w"].dtype(), DType::F32);
    }
}
