//! Compact weight files: GGUF with 8-bit blocks (Q8_0, 32 weights + one f16
//! scale per block) for every weight whose rows split into blocks, f16 for
//! convolution kernels whose rows do not (depthwise 3×3 and 5×5), f32 for the
//! rest (biases, norms, small heads). Convolution kernels are stored as
//! `[out, in·k·k]` matrices with their shape in the metadata (`shape.NAME`).
//! Works on bytes, so the same code reads a bundle natively and in the
//! browser; tensors are dequantized at load, because f32 matmuls are faster
//! than 8-bit ones in wasm.

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Result, Tensor};
use std::collections::HashMap;
use std::io::Cursor;

/// Metadata key that keeps the shape of a tensor stored flattened.
fn shape_key(name: &str) -> String {
    format!("shape.{name}")
}

/// The stored form of a tensor, and its original shape when that differs.
fn quantize(tensor: &Tensor) -> Result<(QTensor, Option<String>)> {
    let dims = tensor.dims();
    if dims.len() < 2 {
        return Ok((QTensor::quantize(tensor, GgmlDType::F32)?, None));
    }
    let rows = dims[0];
    let row_len = tensor.elem_count() / rows.max(1);
    let shape = (dims.len() > 2).then(|| {
        dims.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    });
    let matrix = tensor.reshape((rows, row_len))?;
    let dtype = if row_len % GgmlDType::Q8_0.block_size() == 0 {
        GgmlDType::Q8_0
    } else if dims.len() > 2 {
        GgmlDType::F16
    } else {
        GgmlDType::F32
    };
    Ok((QTensor::quantize(&matrix, dtype)?, shape))
}

/// Serializes `tensors` (sorted by name, for reproducible bytes) with string metadata.
pub fn to_gguf(tensors: &HashMap<String, Tensor>, metadata: &[(&str, String)]) -> Result<Vec<u8>> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut values: Vec<(String, gguf_file::Value)> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), gguf_file::Value::String(v.clone())))
        .collect();
    let mut quantized: Vec<(&str, QTensor)> = Vec::new();
    for name in names {
        let (q, shape) = quantize(&tensors[name])?;
        if let Some(shape) = shape {
            values.push((shape_key(name), gguf_file::Value::String(shape)));
        }
        quantized.push((name.as_str(), q));
    }
    let value_refs: Vec<(&str, &gguf_file::Value)> =
        values.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = quantized.iter().map(|(n, q)| (*n, q)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &value_refs, &tensor_refs)?;
    Ok(out.into_inner())
}

/// Refuses a tensor with a NaN or an infinity: damaged weights would give
/// plausible-looking wrong outputs instead of an error. The sum is finite
/// exactly when every value is and their total stays within f32's range,
/// which trained weights never come near; it needs no copy of the tensor.
pub fn check_finite(name: &str, tensor: &Tensor) -> Result<()> {
    let sum = tensor.to_dtype(candle_core::DType::F32)?.sum_all()?;
    if sum.to_scalar::<f32>()?.is_finite() {
        Ok(())
    } else {
        Err(candle_core::Error::Msg(format!(
            "tensor {name} holds a NaN or an infinity; the weights are damaged"
        )))
    }
}

/// All tensors of a GGUF file, dequantized to f32 and checked to be finite,
/// and its string metadata.
pub fn from_gguf(
    bytes: &[u8],
    device: &Device,
) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let mut reader = Cursor::new(bytes);
    let content = gguf_file::Content::read(&mut reader)?;
    let mut tensors = HashMap::new();
    for name in content.tensor_infos.keys() {
        let mut t = content
            .tensor(&mut reader, name, device)?
            .dequantize(device)?;
        if let Some(shape) = content
            .metadata
            .get(&shape_key(name))
            .and_then(|v| v.to_string().ok())
        {
            let dims = shape
                .split(',')
                .map(|d| d.parse::<usize>())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|_| candle_core::Error::Msg(format!("{name}: bad shape {shape}")))?;
            t = t.reshape(dims)?;
        }
        check_finite(name, &t)?;
        tensors.insert(name.clone(), t);
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
        let err = crate::max_abs_difference(&back["w"], &matrix).unwrap();
        assert!(err < 0.05);
        assert_eq!(back["w"].dtype(), DType::F32);
    }

    #[test]
    fn non_finite_weights_are_refused_at_load() {
        let device = Device::Cpu;
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut values = vec![0.5f32; 8];
            values[3] = bad;
            let tensors = HashMap::from([
                (
                    "head.bias".to_string(),
                    Tensor::new(values, &device).unwrap(),
                ),
                (
                    "w".to_string(),
                    Tensor::ones((2, 32), DType::F32, &device).unwrap(),
                ),
            ]);
            let err = from_gguf(&to_gguf(&tensors, &[]).unwrap(), &device)
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(err.to_string().contains("head.bias"), "{err}");
        }
        let fine = HashMap::from([(
            "b".to_string(),
            Tensor::new(&[1e30f32, -1e30, 3.0], &device).unwrap(),
        )]);
        assert!(from_gguf(&to_gguf(&fine, &[]).unwrap(), &device).is_ok());
    }

    #[test]
    fn convolution_kernels_keep_their_shape() {
        let device = Device::Cpu;
        let pointwise = Tensor::randn(0f32, 1.0, (16, 64, 1, 1), &device).unwrap();
        let depthwise = Tensor::randn(0f32, 1.0, (16, 1, 3, 3), &device).unwrap();
        let tensors = HashMap::from([
            ("pointwise".to_string(), pointwise.clone()),
            ("depthwise".to_string(), depthwise.clone()),
        ]);
        let (back, meta) = from_gguf(&to_gguf(&tensors, &[]).unwrap(), &device).unwrap();
        assert_eq!(meta["shape.depthwise"], "16,1,3,3");
        for (name, original, tolerance) in [
            ("pointwise", &pointwise, 0.05f32),
            ("depthwise", &depthwise, 0.01),
        ] {
            assert_eq!(back[name].dims(), original.dims(), "{name}");
            let err = crate::max_abs_difference(&back[name], original).unwrap();
            assert!(err < tolerance, "{name}: {err}");
        }
    }
}
