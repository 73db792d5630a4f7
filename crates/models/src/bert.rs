//! A trainable BERT encoder with Hugging Face parameter names
//! (`embeddings.*`, `encoder.layer.N.*`), loadable from any BERT checkpoint.
//!
//! Differences from candle-transformers' `BertModel`, all for training:
//! LayerNorm is written with tensor ops so gradients flow through it, and
//! dropout is real, with masks from a seeded generator.

use crate::config::{BertConfig, HiddenAct};
use crate::kernels;
use candle_core::{Module, Result, Tensor, D};
use candle_nn::{embedding, linear, Embedding, Linear, VarBuilder};
use integrabner_core::rng::SplitMix64;

/// Inverted dropout; the identity when `rng` is `None` (evaluation).
pub fn dropout(xs: &Tensor, p: f64, rng: Option<&mut SplitMix64>) -> Result<Tensor> {
    let Some(rng) = rng.filter(|_| p > 0.0) else {
        return Ok(xs.clone());
    };
    let keep = 1.0 / (1.0 - p) as f32;
    let mask: Vec<f32> = (0..xs.elem_count())
        .map(|_| if rng.next_f32() < p as f32 { 0.0 } else { keep })
        .collect();
    let mask = Tensor::from_vec(mask, xs.shape(), xs.device())?.to_dtype(xs.dtype())?;
    xs.mul(&mask)
}

/// LayerNorm from differentiable ops (candle's fused one has no backward).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub fn load(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(size, "weight", candle_nn::Init::Const(1.0))?,
            bias: vb.get_with_hints(size, "bias", candle_nn::Init::Const(0.0))?,
            eps,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mean = xs.mean_keepdim(D::Minus1)?;
        let centered = xs.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centered.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        normed
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

struct Embeddings {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: LayerNorm,
    dropout: f64,
}

impl Embeddings {
    fn load(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        Ok(Self {
            word: embedding(c.vocab_size, c.hidden_size, vb.pp("word_embeddings"))?,
            position: embedding(
                c.max_position_embeddings,
                c.hidden_size,
                vb.pp("position_embeddings"),
            )?,
            token_type: embedding(
                c.type_vocab_size,
                c.hidden_size,
                vb.pp("token_type_embeddings"),
            )?,
            norm: LayerNorm::load(c.hidden_size, c.layer_norm_eps, vb.pp("LayerNorm"))?,
            dropout: c.hidden_dropout_prob,
        })
    }

    fn forward(&self, input_ids: &Tensor, rng: Option<&mut SplitMix64>) -> Result<Tensor> {
        let (_, len) = input_ids.dims2()?;
        let positions = Tensor::arange(0u32, len as u32, input_ids.device())?;
        let types = input_ids.zeros_like()?;
        let xs = self
            .word
            .forward(input_ids)?
            .add(&self.token_type.forward(&types)?)?
            .broadcast_add(&self.position.forward(&positions)?)?;
        dropout(&self.norm.forward(&xs)?, self.dropout, rng)
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
    heads: usize,
    head_size: usize,
    act: HiddenAct,
    hidden_dropout: f64,
    attention_dropout: f64,
}

impl Layer {
    fn load(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        let h = c.hidden_size;
        let attn = vb.pp("attention");
        Ok(Self {
            query: linear(h, h, attn.pp("self").pp("query"))?,
            key: linear(h, h, attn.pp("self").pp("key"))?,
            value: linear(h, h, attn.pp("self").pp("value"))?,
            attention_out: linear(h, h, attn.pp("output").pp("dense"))?,
            attention_norm: LayerNorm::load(
                h,
                c.layer_norm_eps,
                attn.pp("output").pp("LayerNorm"),
            )?,
            intermediate: linear(h, c.intermediate_size, vb.pp("intermediate").pp("dense"))?,
            output: linear(c.intermediate_size, h, vb.pp("output").pp("dense"))?,
            output_norm: LayerNorm::load(h, c.layer_norm_eps, vb.pp("output").pp("LayerNorm"))?,
            heads: c.num_attention_heads,
            head_size: c.head_size(),
            act: c.hidden_act,
            hidden_dropout: c.hidden_dropout_prob,
            attention_dropout: c.attention_probs_dropout_prob,
        })
    }

    fn split_heads(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, t, _) = xs.dims3()?;
        xs.reshape((b, t, self.heads, self.head_size))?
            .transpose(1, 2)?
            .contiguous()
    }

    fn forward(
        &self,
        xs: &Tensor,
        mask: &Tensor,
        mut rng: Option<&mut SplitMix64>,
    ) -> Result<Tensor> {
        let q = self.split_heads(&self.query.forward(xs)?)?;
        let k = self.split_heads(&self.key.forward(xs)?)?;
        let v = self.split_heads(&self.value.forward(xs)?)?;
        let scores = (q.matmul(&k.t()?)? / (self.head_size as f64).sqrt())?.broadcast_add(mask)?;
        let probs = kernels::softmax_last_dim(&scores)?;
        let probs = dropout(&probs, self.attention_dropout, rng.as_deref_mut())?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .flatten_from(D::Minus2)?;
        let attended = dropout(
            &self.attention_out.forward(&context)?,
            self.hidden_dropout,
            rng.as_deref_mut(),
        )?;
        let attended = self.attention_norm.forward(&(attended + xs)?)?;
        let inner = self.intermediate.forward(&attended)?;
        let inner = match self.act {
            HiddenAct::Gelu => kernels::gelu(&inner)?,
            HiddenAct::GeluApproximate => inner.gelu()?,
            HiddenAct::Relu => inner.relu()?,
        };
        let out = dropout(&self.output.forward(&inner)?, self.hidden_dropout, rng)?;
        self.output_norm.forward(&(out + attended)?)
    }
}

pub struct Bert {
    embeddings: Embeddings,
    layers: Vec<Layer>,
}

impl Bert {
    /// `vb` points at the encoder's root (names `embeddings.*`, `encoder.*`).
    pub fn load(vb: VarBuilder, config: &BertConfig) -> Result<Self> {
        Ok(Self {
            embeddings: Embeddings::load(vb.pp("embeddings"), config)?,
            layers: (0..config.num_hidden_layers)
                .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), config))
                .collect::<Result<_>>()?,
        })
    }

    /// Hidden states `[batch, tokens, hidden]`. `attention_mask` is 1 for real
    /// tokens, 0 for padding (`[batch, tokens]`, u32). `rng` turns dropout on.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        mut rng: Option<&mut SplitMix64>,
    ) -> Result<Tensor> {
        let mut xs = self.embeddings.forward(input_ids, rng.as_deref_mut())?;
        let dtype = xs.dtype();
        // 0 where attended, a very large negative number where padded.
        let mask = attention_mask
            .unsqueeze(1)?
            .unsqueeze(1)?
            .to_dtype(dtype)?
            .affine(-1.0, 1.0)?
            .affine(f32::MIN as f64, 0.0)?;
        for layer in &self.layers {
            xs = layer.forward(&xs, &mask, rng.as_deref_mut())?;
        }
        Ok(xs)
    }
}
