//! AdamW (decoupled weight decay) whose state can be saved and restored, so
//! that a resumed run continues exactly; candle-nn's keeps its moments private.

use candle_core::{backprop::GradStore, Result, Tensor, Var};
use std::collections::HashMap;

pub struct AdamW {
    params: Vec<(String, Var)>,
    first: Vec<Tensor>,
    second: Vec<Tensor>,
    /// Per parameter, the factor on the learning rate (1 unless set).
    lr_scale: Vec<f64>,
    pub step: usize,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamW {
    pub fn new(params: Vec<(String, Var)>, weight_decay: f64) -> Result<Self> {
        let zeros = |v: &Var| v.as_tensor().zeros_like();
        Ok(Self {
            first: params
                .iter()
                .map(|(_, v)| zeros(v))
                .collect::<Result<_>>()?,
            second: params
                .iter()
                .map(|(_, v)| zeros(v))
                .collect::<Result<_>>()?,
            lr_scale: vec![1.0; params.len()],
            params,
            step: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        })
    }

    /// Multiplies the learning rate of each parameter by `scale(name)`: a
    /// freshly initialized head learns faster than the pre-trained encoder.
    pub fn scale_learning_rates(&mut self, scale: impl Fn(&str) -> f64) {
        self.lr_scale = self.params.iter().map(|(n, _)| scale(n)).collect();
    }

    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    /// Global L2 norm of the gradients, scaled down to `max_norm` if above.
    /// Returns the norm before clipping.
    pub fn clip(&self, grads: &mut GradStore, max_norm: f64) -> Result<f64> {
        let mut total = 0f64;
        for (_, var) in &self.params {
            if let Some(g) = grads.get(var.as_tensor()) {
                total += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
            }
        }
        let norm = total.sqrt();
        if norm > max_norm {
            let scale = max_norm / (norm + 1e-6);
            for (_, var) in &self.params {
                if let Some(g) = grads.remove(var.as_tensor()) {
                    grads.insert(var.as_tensor(), (g * scale)?);
                }
            }
        }
        Ok(norm)
    }

    pub fn apply(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let correct1 = 1.0 - self.beta1.powi(t);
        let correct2 = 1.0 - self.beta2.powi(t);
        for (i, (_, var)) in self.params.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let lr = lr * self.lr_scale[i];
            // A variable's gradient still points into the forward graph
            // (candle detaches only the gradients of intermediate nodes);
            // moments built on it would keep every step's graph alive.
            let g = g.detach();
            let m = ((&self.first[i] * self.beta1)? + (&g * (1.0 - self.beta1))?)?;
            let v = ((&self.second[i] * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let update = ((&m / correct1)? / ((&v / correct2)?.sqrt()? + self.eps)?)?;
            let decayed = (var.as_tensor() * (1.0 - lr * self.weight_decay))?;
            var.set(&(decayed - (update * lr)?)?)?;
            self.first[i] = m;
            self.second[i] = v;
        }
        Ok(())
    }

    /// Moments by parameter name, for a checkpoint.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.insert(format!("m.{name}"), self.first[i].clone());
            out.insert(format!("v.{name}"), self.second[i].clone());
        }
        out
    }

    pub fn restore(&mut self, state: &HashMap<String, Tensor>, step: usize) -> Result<()> {
        for (i, (name, _)) in self.params.iter().enumerate() {
            let get = |key: String| {
                state
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| candle_core::Error::Msg(format!("checkpoint lacks {key}")))
            };
            self.first[i] = get(format!("m.{name}"))?;
            self.second[i] = get(format!("v.{name}"))?;
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn moments_do_not_hold_on_to_the_forward_graph() {
        // w · x with x itself computed: the gradient of w is built from x's
        // graph, and the moments must not keep it alive from step to step.
        let w = Var::from_tensor(&Tensor::ones(3, candle_core::DType::F32, &Device::Cpu).unwrap())
            .unwrap();
        let mut optimizer = AdamW::new(vec![("w".into(), w.clone())], 0.0).unwrap();
        for _ in 0..2 {
            let x = (w.as_tensor().exp().unwrap() * 2.0).unwrap();
            let loss = (w.as_tensor() * &x).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            assert!(grads.get(w.as_tensor()).unwrap().track_op());
            optimizer.apply(&grads, 0.1).unwrap();
        }
        assert!(optimizer.state().values().all(|t| !t.track_op()));
        assert!(w.as_tensor().to_vec1::<f32>().unwrap()[0] < 1.0);
    }
}
