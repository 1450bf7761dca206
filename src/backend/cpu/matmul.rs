//! Matrix products through the `gemm` crate (SIMD, parallel), plus the plain f64 loop the
//! tests use as their oracle.

use super::{input, Cpu, HostOut};
use crate::backend::api::matmul::{MatmulInput, MatmulOps};
use crate::backend::api::{Backend, ElementwiseOps};
use crate::tensor::Tensor;
use anyhow::Result;
use gemm::Parallelism;

impl MatmulOps for Cpu {
    fn matmul(&self, c: &mut Tensor, x: MatmulInput, s: &MatmulShape) -> Result<()> {
        let (av, bv) = (input(x.a)?, input(x.b)?);
        let biasv = x.bias.map(input).transpose()?;
        let mut cv = if x.accumulate {
            HostOut::update(c)?
        } else {
            HostOut::new(c)?
        };
        matmul(&mut cv, &av, &bv, biasv.as_deref(), s, x.accumulate);
        cv.finish()
    }
    fn matmul_gelu(
        &self,
        h: &mut Tensor,
        act: &mut Tensor,
        x: MatmulInput,
        s: &MatmulShape,
    ) -> Result<()> {
        self.matmul(h, x, s)?;
        self.gelu(act, h)
    }
    fn matmul_dgelu(
        &self,
        dh: &mut Tensor,
        x: MatmulInput,
        s: &MatmulShape,
        h: &Tensor,
    ) -> Result<()> {
        let mut da = self.alloc(&dh.shape, dh.dtype)?;
        self.matmul(&mut da, x, s)?;
        self.gelu_backward(dh, h, &da)
    }
    fn sum_rows(&self, out: &mut Tensor, x: &Tensor, accumulate: bool) -> Result<()> {
        let x = input(x)?;
        let mut o = if accumulate {
            HostOut::update(out)?
        } else {
            HostOut::new(out)?
        };
        sum_rows(&mut o, &x, accumulate);
        o.finish()
    }
}

/// C[b] = op(A[b]) · op(B[b]) (+ bias) (+ C[b] when accumulating), for b in 0..batch.
/// A is [M, K] row-major, or [K, M] when `ta`; B is [K, N], or [N, K] when `tb`; C is [M, N].
/// A batch stride of 0 reuses one matrix for every batch entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulShape {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub ta: bool,
    pub tb: bool,
    pub a_stride: usize,
    pub b_stride: usize,
}

impl MatmulShape {
    pub fn flops(&self) -> f64 {
        2.0 * self.batch as f64 * self.m as f64 * self.n as f64 * self.k as f64
    }
    fn a_strides(&self) -> (isize, isize) {
        // (row stride, column stride) of op(A) as an M×K matrix
        if self.ta {
            (1, self.m as isize)
        } else {
            (self.k as isize, 1)
        }
    }
    fn b_strides(&self) -> (isize, isize) {
        if self.tb {
            (1, self.k as isize)
        } else {
            (self.n as isize, 1)
        }
    }
}

pub fn matmul(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    s: &MatmulShape,
    accumulate: bool,
) {
    let (ars, acs) = s.a_strides();
    let (brs, bcs) = s.b_strides();
    let mn = s.m * s.n;
    let threads = rayon::current_num_threads();
    for bi in 0..s.batch {
        let cb = &mut c[bi * mn..(bi + 1) * mn];
        let ab = &a[bi * s.a_stride..];
        let bb = &b[bi * s.b_stride..];
        if s.k == 0 {
            if !accumulate {
                cb.fill(0.0);
            }
        } else {
            let par = if s.m * s.n * s.k >= 1 << 15 && threads > 1 {
                Parallelism::Rayon(threads)
            } else {
                Parallelism::None
            };
            // SAFETY: the shape checks in ops::matmul guarantee every index below is in bounds:
            // A spans (M-1)·rs + (K-1)·cs < len, likewise B and C.
            unsafe {
                gemm::gemm(
                    s.m,
                    s.n,
                    s.k,
                    cb.as_mut_ptr(),
                    1,
                    s.n as isize,
                    accumulate,
                    ab.as_ptr(),
                    acs,
                    ars,
                    bb.as_ptr(),
                    bcs,
                    brs,
                    1.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    par,
                );
            }
        }
        if let Some(bias) = bias {
            for row in cb.chunks_mut(s.n) {
                for (v, &bv) in row.iter_mut().zip(bias) {
                    *v += bv;
                }
            }
        }
    }
}

/// The same product as [`matmul`] by a plain triple loop in f64 (test oracle).
pub fn matmul_f64_reference(
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    s: &MatmulShape,
) -> Vec<f64> {
    let (ars, acs) = s.a_strides();
    let (brs, bcs) = s.b_strides();
    let mut c = vec![0.0f64; s.batch * s.m * s.n];
    for bi in 0..s.batch {
        for i in 0..s.m {
            for j in 0..s.n {
                let mut acc = bias.map_or(0.0, |b| b[j] as f64);
                for l in 0..s.k {
                    let av =
                        a[bi * s.a_stride + (i as isize * ars + l as isize * acs) as usize] as f64;
                    let bv =
                        b[bi * s.b_stride + (l as isize * brs + j as isize * bcs) as usize] as f64;
                    acc += av * bv;
                }
                c[bi * s.m * s.n + i * s.n + j] = acc;
            }
        }
    }
    c
}

/// out[c] (+)= Σ_r x[r, c]: the bias gradient.
pub fn sum_rows(out: &mut [f32], x: &[f32], accumulate: bool) {
    let cols = out.len();
    let mut acc = vec![0.0f64; cols];
    for row in x.chunks(cols.max(1)) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += v as f64;
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        *o = if accumulate { *o + a as f32 } else { a as f32 };
    }
}
