//! Whole-tensor reductions in f64 (the kernels use a fixed tree; both are deterministic).

pub fn sum(x: &[f32]) -> f32 {
    x.iter().map(|&v| v as f64).sum::<f64>() as f32
}

pub fn sum_squares(x: &[f32]) -> f64 {
    x.iter().map(|&v| (v as f64) * (v as f64)).sum()
}
