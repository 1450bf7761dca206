//! MAE pretraining of `sfm-tiny` on the data layer's synthetic sections: the masked loss falls
//! clearly below predicting zero on the training sections; held-out figures and baselines are
//! printed (see the comment at the assertion: in this budget it does not generalise).

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
    // Held out: 8 sections the training never saw (generator seed 150) under 4 fresh masks,
    // against two baselines on the same masked patches: predicting zero (the mean of a z-scored
    // section; ≈ 1) and predicting each masked patch's own pixel mean (an oracle that knows the
    // patch it cannot see, but nothing within it).
    let held = sections(8, size, 50);
    let p = cfg.encoder.patch;
    let target = seisfuse::ops::patchify(&held, p)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let pp = p * p;
    let (mut model, mut zero, mut patch_mean) = (0.0f64, 0.0f64, 0.0f64);
    for k in 0..4 {
        let masking = Masking::random(1000 + k, 0, 8, n, cfg.len_keep()).unwrap();
        let mask = masking.mask.clone();
        model += mae.forward(&held, masking).unwrap().loss as f64 / 4.0;
        let (mut z, mut m, mut count) = (0.0f64, 0.0f64, 0usize);
        for (patch, &masked) in target.chunks(pp).zip(&mask) {
            if masked == 0.0 {
                continue;
            }
            let mean = patch.iter().map(|&v| v as f64).sum::<f64>() / pp as f64;
            z += patch.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / pp as f64;
            m += patch
                .iter()
                .map(|&v| (v as f64 - mean).powi(2))
                .sum::<f64>()
                / pp as f64;
            count += 1;
        }
        zero += z / count as f64 / 4.0;
        patch_mean += m / count as f64 / 4.0;
    }
    println!(
        "held out: masked loss {model:.4}; predicting zero {zero:.4}, each patch's mean \
         {patch_mean:.4}"
    );
    // Measured (CPU, 600 steps): training 1.466 → 0.885; held out 1.059 against 1.011 for
    // predicting zero and 0.839 for each patch's mean. With a fresh batch every step instead of
    // 16 sections, held out 1.015 against 1.015. So this test shows that the MAE objective and
    // its gradients fit the training sections, not that sfm-tiny generalises in 600 steps: the
    // held-out figures are printed, not asserted.
    //
    // Predicting zero (the mean of a z-scored section) scores ≈ 1 on the training sections as
    // well: the model must fit them clearly below that.
    assert!(
        b < 0.92 && b < 0.7 * a,
        "the training masked loss should fall clearly below predicting zero (≈ 1): {a} → {b}"
    );
}
