//! Criterion benchmark of the CPU mel path: 16 traces × 6000 samples → 224×224 mel images
//! (n_fft 448, hop 27, dB, min-max), on a rayon pool of one thread and of all cores; and the
//! log-mel backward of the same traces. `cargo bench --bench mel`.

use criterion::{criterion_group, criterion_main, Criterion};
use seisfuse::cli::bench_mel::{image_config, log_mel_spec, SAMPLES};
use seisfuse::dsp::mel_images;
use std::hint::black_box;

const TRACES: usize = 16;

fn waves() -> Vec<f32> {
    (0..TRACES * SAMPLES)
        .map(|i| (i as f32 * 0.07).sin() + ((i * 7919) % 1013) as f32 / 1013.0 - 0.5)
        .collect()
}

fn bench(c: &mut Criterion) {
    let x = waves();
    let cfg = image_config();
    let mut g = c.benchmark_group("mel_images_16x6000");
    g.sample_size(10);
    let cores = rayon::current_num_threads();
    for threads in [1, cores] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("rayon pool");
        g.bench_function(format!("{threads}_threads"), |b| {
            b.iter(|| pool.install(|| mel_images(black_box(&x), TRACES, 1, SAMPLES, &cfg).unwrap()))
        });
    }
    g.finish();

    let spec = log_mel_spec().expect("spec");
    let lm = spec.plan().expect("plan");
    let f = lm.n_frames(SAMPLES).expect("frames");
    let dy = vec![1e-3f32; lm.n_mels() * f];
    let mut g = c.benchmark_group("log_mel_forward_16x6000");
    g.sample_size(10);
    g.bench_function("1_thread", |b| {
        b.iter(|| {
            for i in 0..TRACES {
                black_box(lm.forward(&x[i * SAMPLES..(i + 1) * SAMPLES]).unwrap());
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("log_mel_backward_1x6000");
    g.sample_size(10);
    g.bench_function("1_thread", |b| {
        b.iter(|| lm.backward(black_box(&x[..SAMPLES]), &dy).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
