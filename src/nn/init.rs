//! Weight initialisation from the engine's seeded generator (deterministic per seed and name).

use crate::backend::cpu::philox::PhiloxStream;
use crate::tensor::Tensor;
use anyhow::Result;

/// A seeded source of initial weights; each tensor draws from its own stream.
pub struct Init {
    pub seed: u64,
    next_stream: u32,
}

impl Init {
    pub fn new(seed: u64) -> Self {
        Init {
            seed,
            next_stream: 1,
        }
    }
    fn stream(&mut self) -> PhiloxStream {
        self.next_stream += 1;
        PhiloxStream::new(self.seed, 0, self.next_stream)
    }
    /// Xavier/Glorot uniform for a [out, in] weight (MAE's choice for every Linear).
    pub fn xavier_uniform(&mut self, out: usize, inp: usize) -> Result<Tensor> {
        let a = (6.0 / (inp + out) as f64).sqrt() as f32;
        let mut s = self.stream();
        Tensor::from_f32(
            &[out, inp],
            (0..out * inp)
                .map(|_| (2.0 * s.next_f32() - 1.0) * a)
                .collect(),
        )
    }
    /// Normal(0, std) truncated at ±2 std (timm's trunc_normal_ for tokens).
    pub fn trunc_normal(&mut self, shape: &[usize], std: f32) -> Result<Tensor> {
        let mut s = self.stream();
        let n = shape.iter().product();
        let v = (0..n)
            .map(|_| loop {
                let z = s.next_normal();
                if z.abs() <= 2.0 {
                    break z * std;
                }
            })
            .collect();
        Tensor::from_f32(shape, v)
    }
    /// Normal(0, std) (HF's init of the quantizer's weight_proj: std 1).
    pub fn normal(&mut self, shape: &[usize], std: f32) -> Result<Tensor> {
        let mut s = self.stream();
        let n = shape.iter().product();
        Tensor::from_f32(shape, (0..n).map(|_| s.next_normal() * std).collect())
    }
    /// Uniform in [lo, hi) (HF's init of the quantizer's codevectors: [0, 1)).
    pub fn uniform(&mut self, shape: &[usize], lo: f32, hi: f32) -> Result<Tensor> {
        let mut s = self.stream();
        let n = shape.iter().product();
        Tensor::from_f32(
            shape,
            (0..n).map(|_| lo + (hi - lo) * s.next_f32()).collect(),
        )
    }
    pub fn constant(&mut self, shape: &[usize], v: f32) -> Result<Tensor> {
        Tensor::from_f32(shape, vec![v; shape.iter().product()])
    }
}
