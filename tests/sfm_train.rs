//! MAE pretraining of `sfm-tiny` on the data layer's synthetic sections: the masked loss falls
//! clearly.

use seisfuse::data::synth::images::{generate, ImageConfig};
use seisfuse::models::mae::{Mae, MaeConfig, Masking};
use seisfuse::ops::AdamWConfig;
use seisfuse::train::{AdamW, Schedule};
use seisfuse::Tensor;

/// Synthetic sections from the data layer's generator (layers, folds, faults, salt), z-scored
/// per image as SFM does.
fn sections(batch: usize, size: usize, seed: u64) -> Tensor {
    let cfg = ImageConfig::new(size, size);
    let mut v = Vec::with_capacity(batch * size * size);
    for i in 0..batch {
        v.extend(generate(&cfg, 100 + seed, i as u64).clean);
    }
    let mut t = Tensor::from_f32(&[batch, 1, size, size], v).unwrap();
    seisfuse::models::sfm::normalize_images(&mut t.f32s_mut().unwrap(), size * size);
    t
}

#[test]
fn sfm_tiny_mae_masked_loss_falls() {
    let cfg = MaeConfig::preset("sfm-tiny").unwrap();
    let size = cfg.encoder.img_h;
    let mut mae = Mae::new(cfg.clone(), 0).unwrap();
    let mut store = seisfuse::nn::ParamStore::pack(&mut mae, &seisfuse::Device::Cpu).unwrap();
    let mut opt = AdamW::new(AdamWConfig {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.05,
    });
    let steps: usize = std::env::var("SFM_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let lr: f32 = std::env::var("SFM_LR")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1e-3);
    let sched = Schedule {
        base_lr: lr,
        min_lr: 1e-4,
        warmup_steps: 10,
        total_steps: steps,
    };
    let n = cfg.encoder.num_patches();
    let mut first = Vec::new();
    let mut last = Vec::new();
    for step in 0..steps {
        // A small synthetic dataset (16 sections) seen with fresh random masks every step.
        let img = sections(8, size, (step % 2) as u64);
        let masking = Masking::random(7, step as u32, 8, n, cfg.len_keep()).unwrap();
        let out = mae.forward(&img, masking).unwrap();
        store.zero_grad().unwrap();
        mae.backward(&out.cache, &mut store.grads).unwrap();
        opt.step(&mut store, sched.lr(step)).unwrap();
        if step % 25 == 0 {
            println!("step {step}: {:.4}", out.loss);
        }
        if step < 10 {
            first.push(out.loss);
        }
        if step >= steps - 10 {
            last.push(out.loss);
        }
    }
    let (a, b) = (
        first.iter().sum::<f32>() / 10.0,
        last.iter().sum::<f32>() / 10.0,
    );
    println!("sfm-tiny MAE: masked loss {a:.4} (first 10 steps) → {b:.4} (last 10)");
    // Predicting each patch's mean gives ≈ 1 on z-scored sections: the model must beat that,
    // i.e. use the visible patches, not only learn the mean.
    assert!(
        b < 0.92 && b < 0.7 * a,
        "the masked loss should fall clearly below the mean predictor: {a} → {b}"
    );
}
