//! Elementwise ops: add, bias add, GELU (erf form) and its derivative, scale, fill.

use super::{binary, input, unary, Cpu, HostOut};
use crate::backend::api::ElementwiseOps;
use crate::tensor::Tensor;
use anyhow::Result;
use rayon::prelude::*;

impl ElementwiseOps for Cpu {
    fn add(&self, out: &mut Tensor, a: &Tensor, b: &Tensor) -> Result<()> {
        // `out` may view a's buffer (in-place accumulation): read the inputs first.
        if out.shares_storage(a) || out.shares_storage(b) {
            let (av, bv) = (input(a)?.into_owned(), input(b)?.into_owned());
            let mut o = HostOut::new(out)?;
            add(&mut o, &av, &bv);
            return o.finish();
        }
        binary(out, a, b, add)
    }
    fn bias_add(&self, out: &mut Tensor, x: &Tensor, bias: &Tensor) -> Result<()> {
        binary(out, x, bias, bias_add)
    }
    fn gelu(&self, out: &mut Tensor, x: &Tensor) -> Result<()> {
        unary(out, x, super::gelu::gelu)
    }
    fn gelu_backward(&self, dx: &mut Tensor, x: &Tensor, dy: &Tensor) -> Result<()> {
        binary(dx, x, dy, super::gelu::gelu_backward)
    }
    fn scale(&self, x: &mut Tensor, s: f32) -> Result<()> {
        let mut o = HostOut::update(x)?;
        scale(&mut o, s);
        o.finish()
    }
    fn cast(&self, out: &mut Tensor, x: &Tensor) -> Result<()> {
        let x = input(x)?;
        out.write_f32(&x)
    }
    fn drain_add(&self, acc: &mut Tensor, x: &mut Tensor) -> Result<()> {
        let xv = input(x)?.into_owned();
        let mut o = HostOut::update(acc)?;
        let a = o.to_vec();
        add(&mut o, &a, &xv);
        o.finish()?;
        x.write_f32(&vec![0.0; xv.len()])
    }
}

fn zip_map(out: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) {
    if out.len() >= super::PAR_MIN {
        out.par_iter_mut()
            .zip(a.par_iter().zip(b.par_iter()))
            .for_each(|(o, (&x, &y))| *o = f(x, y));
    } else {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
    }
}

/// out = a + b.
pub fn add(out: &mut [f32], a: &[f32], b: &[f32]) {
    zip_map(out, a, b, |x, y| x + y);
}

/// out[r, c] = x[r, c] + bias[c], rows of length `bias.len()`.
pub fn bias_add(out: &mut [f32], x: &[f32], bias: &[f32]) {
    let n = bias.len();
    out.par_chunks_mut(n.max(1))
        .zip(x.par_chunks(n.max(1)))
        .for_each(|(o, xr)| {
            for ((o, &v), &b) in o.iter_mut().zip(xr).zip(bias) {
                *o = v + b;
            }
        });
}

/// erf in f64 (musl's implementation through the `libm` crate).
pub fn erf(x: f64) -> f64 {
    libm::erf(x)
}

/// gelu(x) through libm's f64 erf: the reference the vectorised `gelu.rs` is checked against.
pub fn gelu_scalar(x: f32) -> f32 {
    let x = x as f64;
    (0.5 * x * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2))) as f32
}

/// d gelu / dx = Φ(x) + x φ(x), the reference as `gelu_scalar`.
pub fn gelu_grad_scalar(x: f32) -> f32 {
    let x = x as f64;
    let cdf = 0.5 * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2));
    let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    (cdf + x * pdf) as f32
}

/// x *= s.
pub fn scale(x: &mut [f32], s: f32) {
    x.par_iter_mut().with_min_len(4096).for_each(|v| *v *= s);
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn erf_matches_known_values() {
        let cases = [
            (0.0, 0.0),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (3.0, 0.999_977_909_503_001_4),
            (-1.5, -0.966_105_146_475_310_7),
        ];
        for (x, want) in cases {
            assert!(
                (erf(x) - want).abs() < 1e-13,
                "erf({x}) = {} want {want}",
                erf(x)
            );
        }
    }
}
