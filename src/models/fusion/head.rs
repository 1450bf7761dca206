//! The classifier of the fused models: an MLP of decreasing widths (Linear → GELU → dropout per
//! hidden layer) and a final Linear to the classes. Names: `{fusion}mlp.{i}.{weight,bias}` for
//! the hidden layers (visited under the model's `fusion.` prefix) and `{head}{weight,bias}` for
//! the classifier (under `head.`).

use super::{dropout_key, FusionOutput};
use crate::nn::{Grads, Init, Linear, ParamVisitor};
use crate::ops::{self, DropoutKey};
use crate::tensor::Tensor;
use anyhow::{bail, Result};

/// Widths of the hidden layers (decreasing, e.g. [256, 128]; empty for a linear classifier),
/// the dropout after each hidden layer, and the number of classes.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadConfig {
    pub hidden: Vec<usize>,
    pub dropout: f32,
    pub classes: usize,
}

impl HeadConfig {
    pub fn new(hidden: &[usize], dropout: f32, classes: usize) -> Self {
        HeadConfig {
            hidden: hidden.to_vec(),
            dropout,
            classes,
        }
    }
    fn validate(&self) -> Result<()> {
        if self.classes < 2 {
            bail!(
                "fusion head: at least 2 classes are needed, found {}",
                self.classes
            );
        }
        if self.hidden.contains(&0) {
            bail!(
                "fusion head: hidden widths must be positive, found {:?}",
                self.hidden
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail!(
                "fusion head: dropout must be in [0, 1), found {}",
                self.dropout
            );
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct ClassifierHead {
    pub layers: Vec<Linear>,
    pub classifier: Linear,
    pub dropout: f32,
}

pub struct ClassifierHeadCache {
    /// Per hidden layer: its input, its pre-activation and the dropout key used.
    layers: Vec<(Tensor, Tensor, Option<DropoutKey>)>,
    /// The classifier's input.
    last: Tensor,
}

impl ClassifierHead {
    pub fn new(input: usize, cfg: &HeadConfig, init: &mut Init) -> Result<Self> {
        cfg.validate()?;
        if input == 0 {
            bail!("fusion head: the input width must be positive");
        }
        let mut layers = Vec::with_capacity(cfg.hidden.len());
        let mut w = input;
        for &h in &cfg.hidden {
            layers.push(Linear::new(w, h, true, init)?);
            w = h;
        }
        Ok(ClassifierHead {
            layers,
            classifier: Linear::new(w, cfg.classes, true, init)?,
            dropout: cfg.dropout,
        })
    }

    /// x [B, input] → logits [B, classes]; `key(i)` is the dropout key of hidden layer i
    /// (None: no dropout).
    pub fn forward(
        &self,
        x: &Tensor,
        key: impl Fn(u32) -> Option<DropoutKey>,
    ) -> Result<(Tensor, ClassifierHeadCache)> {
        let mut h = x.clone();
        let mut layers = Vec::with_capacity(self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            let z = l.forward(&h)?;
            let a = ops::gelu(&z)?;
            let k = key(i as u32);
            let out = match k {
                Some(k) => ops::dropout(&a, self.dropout, k)?,
                None => a,
            };
            layers.push((h, z, k));
            h = out;
        }
        let logits = self.classifier.forward(&h)?;
        Ok((logits, ClassifierHeadCache { layers, last: h }))
    }

    /// dx [B, input] from dlogits; parameter gradients are added into `grads`.
    pub fn backward(
        &self,
        c: &ClassifierHeadCache,
        dlogits: &Tensor,
        grads: &mut Grads,
    ) -> Result<Tensor> {
        let mut d = self.classifier.backward(&c.last, dlogits, grads)?;
        for (l, (x, z, k)) in self.layers.iter().zip(&c.layers).rev() {
            if let Some(k) = k {
                d = ops::dropout_backward(&d, self.dropout, *k)?;
            }
            let dz = ops::gelu_backward(z, &d)?;
            d = l.backward(x, &dz, grads)?;
        }
        Ok(d)
    }

    /// The output of a classifier model ([`Objective::Classify`](super::Objective)): the logits
    /// of the fused features `x`, dropout in train mode keyed by the model's `seed` and `step`.
    pub fn classify(
        &self,
        x: &Tensor,
        train: bool,
        seed: u64,
        step: u32,
    ) -> Result<(FusionOutput, ClassifierHeadCache)> {
        let (logits, cache) =
            self.forward(x, |i| dropout_key(train, self.dropout, seed, step, i))?;
        let embeddings = None;
        Ok((FusionOutput { logits, embeddings }, cache))
    }

    /// Visits the hidden layers as `{mlp_prefix}{i}.` and the classifier as `{head_prefix}`.
    pub fn visit_split(
        &mut self,
        mlp_prefix: &str,
        head_prefix: &str,
        f: &mut ParamVisitor,
    ) -> Result<()> {
        use crate::nn::Parameters;
        for (i, l) in self.layers.iter_mut().enumerate() {
            l.visit(&format!("{mlp_prefix}{i}."), f)?;
        }
        self.classifier.visit(head_prefix, f)
    }

    /// [`Self::visit_split`] under late and early fusion's names: `{prefix}fusion.mlp.{i}.` and
    /// `{prefix}head.`.
    pub fn visit_fusion(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        self.visit_split(
            &format!("{prefix}fusion.mlp."),
            &format!("{prefix}head."),
            f,
        )
    }
}
