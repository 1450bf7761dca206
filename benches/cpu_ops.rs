//! Criterion benchmarks of the CPU reference backend: matmul, LayerNorm and attention.

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

/// The products of one sfm-base block at batch 2 (394 tokens): qkv, proj, fc1, fc2.
fn matmul_vit(c: &mut Criterion) {
    let mut g = c.benchmark_group("cpu_matmul_f32_sfm_base");
    g.sample_size(10);
    for (name, m, k, n) in [
        ("qkv", 394, 768, 2304),
        ("proj", 394, 768, 768),
        ("fc1", 394, 768, 3072),
        ("fc2", 394, 3072, 768),
    ] {
        let (a, b) = (random(&[m, k]), random(&[k, n]));
        g.throughput(Throughput::Elements((2 * m * n * k) as u64));
        g.bench_function(name, |bench| {
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

/// Attention forward, and forward + backward, at SeisLM's shapes (749 frames): seislm-tiny's
/// 4 heads of 12 and seislm-base's 12 heads of 20, on separate q, k, v.
fn attention(c: &mut Criterion) {
    let mut g = c.benchmark_group("cpu_attention_f32");
    g.sample_size(10);
    for (name, b, heads, hd) in [
        ("seislm-tiny-b16", 16, 4, 12),
        ("seislm-base-b2", 2, 12, 20),
    ] {
        let (n, w) = (749usize, heads * hd);
        let (q, k, v) = (random(&[b, n, w]), random(&[b, n, w]), random(&[b, n, w]));
        let dout = random(&[b, n, w]);
        g.throughput(Throughput::Elements((4 * b * heads * n * n * hd) as u64));
        g.bench_function(format!("{name}/forward"), |bench| {
            bench.iter(|| ops::attention(&q, &k, &v, heads).unwrap())
        });
        let fwd = ops::attention(&q, &k, &v, heads).unwrap();
        g.bench_function(format!("{name}/backward"), |bench| {
            bench.iter(|| ops::attention_backward(&q, &k, &v, &fwd, &dout, heads).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, matmul, matmul_vit, layer_norm, attention);
criterion_main!(benches);
