//! Criterion benchmarks of the CPU reference backend: matmul and LayerNorm.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use seisfuse::ops;
use seisfuse::Tensor;

fn random(shape: &[usize]) -> Tensor {
    let mut s = seisfuse::backend::cpu::philox::PhiloxStream::new(1, 0, 0);
    let n = shape.iter().product();
    Tensor::from_f32(shape, (0..n).map(|_| s.next_f32() - 0.5).collect()).unwrap()
}

fn matmul(c: &mut Criterion) {
    let mut g = c.benchmark_group("cpu_matmul_f32");
    for n in [128usize, 256, 512] {
        let (a, b) = (random(&[n, n]), random(&[n, n]));
        g.throughput(Throughput::Elements((2 * n * n * n) as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |bench, _| {
            bench.iter(|| ops::matmul(&a, &b, false, false, None).unwrap())
        });
    }
    g.finish();
}

fn layer_norm(c: &mut Criterion) {
    let mut g = c.benchmark_group("cpu_layer_norm_f32");
    let (rows, cols) = (4 * 197, 768);
    let (x, w, b) = (random(&[rows, cols]), random(&[cols]), random(&[cols]));
    g.throughput(Throughput::Bytes((2 * rows * cols * 4) as u64));
    g.bench_function(format!("{rows}x{cols}"), |bench| {
        bench.iter(|| ops::layer_norm(&x, &w, &b, 1e-6).unwrap())
    });
    g.finish();
}

criterion_group!(benches, matmul, layer_norm);
criterion_main!(benches);
