//! Loader throughput: batches of 224×224 f32 images from a memory-mapped .npy (on page cache)
//! with SFM's per-image z-score, and 3×3001 waveforms with SeisLM's demean/std and Gaussian
//! pick labels. Two worker threads, batch 64. Results go in docs/perf.md ("Data loader").

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use seisfuse::data::npy;
use seisfuse::data::transforms::{DemeanStd, GaussianPicks, ZScore};
use seisfuse::data::{Loader, LoaderConfig, NpyDataset};
use std::time::Duration;

const IMAGES: usize = 512;
const WAVES: usize = 1024;
const BATCH: usize = 64;

fn workers() -> usize {
    std::env::var("SEISFUSE_LOADER_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

fn bench_loader(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("seisfuse-bench-loader-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let img_path = dir.join("images.npy");
    let img: Vec<f32> = (0..IMAGES * 224 * 224)
        .map(|i| ((i % 9973) as f32 * 0.37).sin())
        .collect();
    npy::write(&img_path, &[IMAGES, 224, 224], &img).expect("write images");
    drop(img);
    let wav_path = dir.join("waveforms.npy");
    let wav: Vec<f32> = (0..WAVES * 3 * 3001)
        .map(|i| ((i % 7919) as f32 * 0.11).cos())
        .collect();
    npy::write(&wav_path, &[WAVES, 3, 3001], &wav).expect("write waveforms");
    drop(wav);
    let picks: Vec<i32> = (0..WAVES)
        .flat_map(|i| [500 + (i % 900) as i32, 1800])
        .collect();
    npy::write(dir.join("picks.npy"), &[WAVES, 2], &picks).expect("write picks");

    let mut cfg = LoaderConfig::new(BATCH);
    cfg.workers = workers();
    cfg.prefetch = 2;
    cfg.drop_last = true;

    let mut g = c.benchmark_group("loader");
    g.sample_size(10).measurement_time(Duration::from_secs(8));

    let images = Loader::new(NpyDataset::open(&img_path).expect("open"), cfg.clone())
        .expect("loader")
        .with_transform(ZScore::default())
        .expect("zscore");
    let n_img = (images.num_batches() * BATCH) as u64;
    g.throughput(Throughput::Elements(n_img));
    g.bench_function("images_224x224_zscore_b64", |b| {
        let mut epoch = 0;
        b.iter(|| {
            epoch += 1;
            let mut n = 0;
            for batch in images.epoch(epoch) {
                let batch = batch.expect("batch");
                n += batch.indices.len();
                images.recycle(batch);
            }
            n
        })
    });
    let raw = Loader::new(NpyDataset::open(&img_path).expect("open"), cfg.clone()).expect("loader");
    g.bench_function("images_224x224_raw_b64", |b| {
        let mut epoch = 0;
        b.iter(|| {
            epoch += 1;
            raw.epoch(epoch)
                .map(|b| b.expect("batch").indices.len())
                .sum::<usize>()
        })
    });

    let no_recycle = Loader::new(NpyDataset::open(&img_path).expect("open"), cfg.clone())
        .expect("loader")
        .with_transform(ZScore::default())
        .expect("zscore");
    g.bench_function("images_224x224_zscore_b64_no_recycle", |b| {
        let mut epoch = 0;
        b.iter(|| {
            epoch += 1;
            no_recycle
                .epoch(epoch)
                .map(|b| b.expect("batch").indices.len())
                .sum::<usize>()
        })
    });

    let waves = Loader::new(
        NpyDataset::open(&wav_path)
            .expect("open")
            .with_picks(dir.join("picks.npy"))
            .expect("picks"),
        cfg.clone(),
    )
    .expect("loader")
    .with_transform(DemeanStd::default())
    .expect("demean")
    .with_transform(GaussianPicks::default())
    .expect("labels");
    g.throughput(Throughput::Elements((waves.num_batches() * BATCH) as u64));
    g.bench_function("waveforms_3x3001_demean_std_gauss_b64", |b| {
        let mut epoch = 0;
        b.iter(|| {
            epoch += 1;
            waves
                .epoch(epoch)
                .map(|b| b.expect("batch").indices.len())
                .sum::<usize>()
        })
    });
    g.finish();
    std::fs::remove_dir_all(&dir).ok();
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat (Linux).
fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Throughput per CPU-second, which a busy shared machine distorts far less than wall time:
/// on an otherwise idle machine with W cores the loader approaches W × this figure.
fn cpu_normalised(_: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("seisfuse-bench-cpu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join("images.npy");
    let img: Vec<f32> = (0..IMAGES * 224 * 224)
        .map(|i| ((i % 9973) as f32 * 0.37).sin())
        .collect();
    npy::write(&p, &[IMAGES, 224, 224], &img).expect("write images");
    drop(img);
    let mut cfg = LoaderConfig::new(BATCH);
    cfg.workers = workers();
    cfg.drop_last = true;
    for zscore in [true, false] {
        let mut l = Loader::new(NpyDataset::open(&p).expect("open"), cfg.clone()).expect("loader");
        if zscore {
            l = l.with_transform(ZScore::default()).expect("zscore");
        }
        for b in l.epoch(0) {
            l.recycle(b.expect("batch"));
        }
        let (Some(c0), t0) = (cpu_seconds(), std::time::Instant::now()) else {
            return;
        };
        let mut n = 0usize;
        let mut epoch = 1;
        while t0.elapsed().as_secs_f64() < 5.0 {
            for b in l.epoch(epoch) {
                let b = b.expect("batch");
                n += b.indices.len();
                l.recycle(b);
            }
            epoch += 1;
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds().unwrap_or(c0) - c0;
        println!(
            "images_224x224_{}_b64 (manual): {n} images in {wall:.2} s wall = {:.0} images/s; \
             {cpu:.2} CPU-s = {:.0} images per CPU-second",
            if zscore { "zscore" } else { "raw" },
            n as f64 / wall,
            n as f64 / cpu.max(1e-9)
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

criterion_group!(benches, bench_loader, cpu_normalised);
criterion_main!(benches);
