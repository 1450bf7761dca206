//! bf16 mixed-precision training (docs/architecture.md, "Precision"): fp32 master weights and
//! gradients, bf16 activations and compute copies of the weights. Each model's bf16 forward and
//! backward are compared with its fp32 twin (‖bf16 − fp32‖/‖fp32‖ within the bf16 tolerance), the optimizer
//! must keep the compute copies equal to the rounded masters, and a bf16 MAE must train.

mod common;
use common::*;
use seisfuse::backend::Device;
use seisfuse::models::mae::{Mae, MaeConfig, Masking};
use seisfuse::models::seislm::{Seislm, SeislmConfig};
use seisfuse::models::sfm::{Vit, VitConfig};
use seisfuse::nn::Parameters;
use seisfuse::ops::{self, AdamWConfig};
use seisfuse::train::AdamW;
use seisfuse::{DType, Tensor};
use std::collections::BTreeMap;

/// Activations round to 8 bits of mantissa at every layer; whole-model outputs stay within
/// 2 % (the per-op bf16 tolerance of docs/architecture.md is 1 %), parameter gradients within 5 %.
const OUT_TOL: f64 = 2e-2;
const GRAD_TOL: f64 = 5e-2;

fn compare_grads(what: &str, got: &BTreeMap<String, Vec<f32>>, want: &BTreeMap<String, Vec<f32>>) {
    assert_eq!(got.len(), want.len(), "{what}: parameter sets differ");
    let norm = |v: &[f32]| v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let largest = want.values().map(|w| norm(w)).fold(0.0, f64::max);
    let mut worst = (0.0f64, String::new());
    for (name, w) in want {
        let g = &got[name];
        assert!(g.iter().all(|v| v.is_finite()), "{what}: {name} not finite");
        // Gradients that are zero in exact arithmetic (the key bias: softmax ignores a shift
        // of every score) are rounding noise in both runs; they must stay small, not close.
        if norm(w) < 1e-4 * largest {
            assert!(
                norm(g) < 1e-2 * largest,
                "{what}: {name} should be ≈ 0, has norm {}",
                norm(g)
            );
            continue;
        }
        let e = rel_err(g, w);
        if e > worst.0 {
            worst = (e, name.clone());
        }
    }
    println!(
        "{what}: {} gradients, worst rel err {:.2e} ({})",
        want.len(),
        worst.0,
        worst.1
    );
    assert!(
        worst.0 < GRAD_TOL,
        "{what}: {} off by {:.3e}",
        worst.1,
        worst.0
    );
}

fn bf16(t: &Tensor) -> Tensor {
    ops::cast(t, DType::BF16).unwrap()
}

fn micro_vit() -> VitConfig {
    VitConfig {
        img_h: 16,
        img_w: 24,
        in_chans: 1,
        patch: 4,
        dim: 32,
        depth: 2,
        heads: 2,
        mlp_ratio: 2.0,
        eps: 1e-6,
    }
}

/// bf16 emulated on the CPU (each op's output rounded).
#[test]
fn vit_bf16_forward_and_gradients_follow_fp32() {
    vit_bf16_forward_and_gradients_follow_fp32_on(Device::Cpu);
}

/// The same with the bf16 run on CUDA: also a CPU-fp32 vs GPU-bf16 parity check.
#[test]
#[ignore = "needs a CUDA GPU"]
fn vit_bf16_forward_and_gradients_follow_fp32_cuda() {
    vit_bf16_forward_and_gradients_follow_fp32_on(cuda(
        "vit bf16 forward and gradients follow fp32",
    ));
}

/// The bf16 runs on `d`.
fn vit_bf16_forward_and_gradients_follow_fp32_on(d: Device) {
    let cfg = micro_vit();
    let mut a = Vit::new(cfg.clone(), 3).unwrap();
    let mut b = Vit::new(cfg.clone(), 3).unwrap();
    let mut sa = pack(&mut a, &Device::Cpu);
    let mut sb = pack(&mut b, &d);
    sb.set_compute_dtype(&mut b, DType::BF16).unwrap();
    let img = rand_tensor(&[2, 1, 16, 24], 1);
    let (ya, ca) = a.forward(&img, None).unwrap();
    let (yb, cb) = b.forward(&bf16(&img.to_device(&d).unwrap()), None).unwrap();
    assert_eq!(yb.dtype, DType::BF16, "activations must be bf16");
    let e = rel_err(&yb.to_vec_f32().unwrap(), &ya.to_vec_f32().unwrap());
    println!("vit bf16 output rel err {e:.2e}");
    assert!(e < OUT_TOL, "output off by {e}");
    let up = rand_tensor(&ya.shape, 2);
    let da = a
        .backward(&ca, &up, &[], true, &mut sa.grads)
        .unwrap()
        .unwrap();
    let db = b
        .backward(
            &cb,
            &bf16(&up.to_device(&d).unwrap()),
            &[],
            true,
            &mut sb.grads,
        )
        .unwrap()
        .unwrap();
    let e = rel_err(&db.to_vec_f32().unwrap(), &da.to_vec_f32().unwrap());
    assert!(e < GRAD_TOL, "image gradient off by {e}");
    compare_grads("vit", &grads_of(&sb), &grads_of(&sa));
    // Masters and gradients stay fp32.
    assert_eq!(sb.grads.flat().unwrap().dtype, DType::F32, "gradients");
    b.visit("", &mut |n, p| {
        assert_eq!(p.value.dtype, DType::F32, "{n} master");
        assert_eq!(p.compute.as_ref().map(|c| c.dtype), Some(DType::BF16));
        Ok(())
    })
    .unwrap();
}

/// bf16 emulated on the CPU (each op's output rounded).
#[test]
fn mae_bf16_loss_and_gradients_follow_fp32() {
    mae_bf16_loss_and_gradients_follow_fp32_on(Device::Cpu);
}

/// The same with the bf16 run on CUDA: also a CPU-fp32 vs GPU-bf16 parity check.
#[test]
#[ignore = "needs a CUDA GPU"]
fn mae_bf16_loss_and_gradients_follow_fp32_cuda() {
    mae_bf16_loss_and_gradients_follow_fp32_on(cuda("mae bf16 loss and gradients follow fp32"));
}

/// The bf16 runs on `d`.
fn mae_bf16_loss_and_gradients_follow_fp32_on(d: Device) {
    let mut cfg = MaeConfig::preset("sfm-tiny").unwrap();
    cfg.encoder = micro_vit();
    cfg.decoder_dim = 16;
    cfg.decoder_depth = 1;
    cfg.decoder_heads = 2;
    let mut a = Mae::new(cfg.clone(), 5).unwrap();
    let mut b = Mae::new(cfg.clone(), 5).unwrap();
    let mut sa = pack(&mut a, &Device::Cpu);
    let mut sb = pack(&mut b, &d);
    sb.set_compute_dtype(&mut b, DType::BF16).unwrap();
    let img = rand_tensor(&[2, 1, 16, 24], 4);
    let n = cfg.encoder.num_patches();
    let mk = || Masking::random(9, 0, 2, n, cfg.len_keep()).unwrap();
    let oa = a.forward(&img, mk()).unwrap();
    let ob = b.forward(&bf16(&img.to_device(&d).unwrap()), mk()).unwrap();
    let e = ((ob.loss - oa.loss) / oa.loss).abs() as f64;
    println!(
        "mae loss fp32 {:.5} bf16 {:.5} (rel {e:.2e})",
        oa.loss, ob.loss
    );
    assert!(e < OUT_TOL);
    a.backward(&oa.cache, &mut sa.grads).unwrap();
    b.backward(&ob.cache, &mut sb.grads).unwrap();
    compare_grads("mae", &grads_of(&sb), &grads_of(&sa));
}

/// bf16 emulated on the CPU (each op's output rounded).
#[test]
fn seislm_bf16_forward_and_gradients_follow_fp32() {
    seislm_bf16_forward_and_gradients_follow_fp32_on(Device::Cpu);
}

/// The same with the bf16 run on CUDA: also a CPU-fp32 vs GPU-bf16 parity check.
#[test]
#[ignore = "needs a CUDA GPU"]
fn seislm_bf16_forward_and_gradients_follow_fp32_cuda() {
    seislm_bf16_forward_and_gradients_follow_fp32_on(cuda(
        "seislm bf16 forward and gradients follow fp32",
    ));
}

/// The bf16 runs on `d`.
fn seislm_bf16_forward_and_gradients_follow_fp32_on(d: Device) {
    let cfg = SeislmConfig::preset("seislm-tiny").unwrap();
    let mut a = Seislm::new(cfg.clone(), 7).unwrap();
    let mut b = Seislm::new(cfg.clone(), 7).unwrap();
    let mut sa = pack(&mut a, &Device::Cpu);
    let mut sb = pack(&mut b, &d);
    sb.set_compute_dtype(&mut b, DType::BF16).unwrap();
    let wave = rand_tensor(&[2, 3, 301], 8);
    let t = cfg.frames(301).unwrap();
    let mask: Vec<bool> = (0..2 * t).map(|i| i % 7 < 2).collect();
    let (oa, ca) = a.forward(&wave, Some(&mask)).unwrap();
    let (ob, cb) = b
        .forward(&bf16(&wave.to_device(&d).unwrap()), Some(&mask))
        .unwrap();
    let e = rel_err(
        &ob.last_hidden_state.to_vec_f32().unwrap(),
        &oa.last_hidden_state.to_vec_f32().unwrap(),
    );
    println!("seislm bf16 output rel err {e:.2e}");
    assert!(e < OUT_TOL, "output off by {e}");
    let up = rand_tensor(&oa.last_hidden_state.shape, 9);
    let da = a
        .backward(&ca, &up, None, true, &mut sa.grads)
        .unwrap()
        .unwrap();
    let db = b
        .backward(
            &cb,
            &bf16(&up.to_device(&d).unwrap()),
            None,
            true,
            &mut sb.grads,
        )
        .unwrap()
        .unwrap();
    let e = rel_err(&db.to_vec_f32().unwrap(), &da.to_vec_f32().unwrap());
    assert!(e < GRAD_TOL, "waveform gradient off by {e}");
    compare_grads("seislm", &grads_of(&sb), &grads_of(&sa));
}

#[test]
fn adamw_refreshes_the_bf16_compute_copies() {
    let mut vit = Vit::new(micro_vit(), 1).unwrap();
    let mut store = pack(&mut vit, &Device::Cpu);
    store.set_compute_dtype(&mut vit, DType::BF16).unwrap();
    let mut opt = AdamW::new(AdamWConfig {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.05,
    });
    let img = bf16(&rand_tensor(&[1, 1, 16, 24], 2));
    let (y, c) = vit.forward(&img, None).unwrap();
    vit.backward(
        &c,
        &bf16(&rand_tensor(&y.shape, 3)),
        &[],
        false,
        &mut store.grads,
    )
    .unwrap();
    opt.step(&mut store, 1e-2).unwrap();
    vit.visit("", &mut |n, p| {
        let want = p.value.to_dtype(DType::BF16)?.to_vec_f32()?;
        let got = p.compute.as_ref().expect("compute copy").to_vec_f32()?;
        assert_eq!(
            got, want,
            "{n}: the compute copy must be the rounded master"
        );
        Ok(())
    })
    .unwrap();
}

/// bf16 emulated on the CPU (each op's output rounded).
#[test]
fn mae_trains_in_bf16() {
    mae_trains_in_bf16_on(Device::Cpu);
}

/// The same with the bf16 run on CUDA.
#[test]
#[ignore = "needs a CUDA GPU"]
fn mae_trains_in_bf16_cuda() {
    mae_trains_in_bf16_on(cuda("mae trains in bf16"));
}

fn mae_trains_in_bf16_on(d: Device) {
    let mut cfg = MaeConfig::preset("sfm-tiny").unwrap();
    cfg.encoder = micro_vit();
    cfg.decoder_dim = 16;
    cfg.decoder_depth = 1;
    cfg.decoder_heads = 2;
    let mut mae = Mae::new(cfg.clone(), 0).unwrap();
    let mut store = pack(&mut mae, &d);
    store.set_compute_dtype(&mut mae, DType::BF16).unwrap();
    let mut opt = AdamW::new(AdamWConfig {
        lr: 2e-3,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.0,
    });
    // Smooth images (a few sinusoids): the masked patches are predictable from the visible ones.
    let (h, w) = (16, 24);
    let mut v = Vec::new();
    for i in 0..4 {
        for y in 0..h {
            for x in 0..w {
                let f = 0.3 + 0.1 * i as f32;
                v.push((f * x as f32 + 0.2 * y as f32).sin() + 0.5 * (0.15 * y as f32).cos());
            }
        }
    }
    let mut img = Tensor::from_f32(&[4, 1, h, w], v).unwrap();
    seisfuse::models::sfm::normalize_images(&mut img.f32s_mut().unwrap(), h * w);
    let img = bf16(&img.to_device(&d).unwrap());
    let n = cfg.encoder.num_patches();
    let mut losses = Vec::new();
    for step in 0..60 {
        let m = Masking::random(3, step, 4, n, cfg.len_keep()).unwrap();
        let out = mae.forward(&img, m).unwrap();
        store.zero_grad().unwrap();
        mae.backward(&out.cache, &mut store.grads).unwrap();
        opt.step(&mut store, 2e-3).unwrap();
        losses.push(out.loss);
    }
    let first = losses[..5].iter().sum::<f32>() / 5.0;
    let last = losses[55..].iter().sum::<f32>() / 5.0;
    println!("bf16 MAE: masked loss {first:.4} → {last:.4}");
    assert!(
        last < 0.5 * first,
        "bf16 training should cut the loss: {first} → {last}"
    );
}

/// bf16 emulated on the CPU (each op's output rounded).
#[test]
fn seislm_heads_bf16_follow_fp32() {
    seislm_heads_bf16_follow_fp32_on(Device::Cpu);
}

/// The same with the bf16 run on CUDA.
#[test]
#[ignore = "needs a CUDA GPU"]
fn seislm_heads_bf16_follow_fp32_cuda() {
    seislm_heads_bf16_follow_fp32_on(cuda("seislm heads bf16 follow fp32"));
}

fn seislm_heads_bf16_follow_fp32_on(d: Device) {
    use seisfuse::models::seislm_heads::{
        class_loss, pick_loss, EventHead, HeadConfig, PhasePickHead,
    };
    let (b, frames, h, t) = (2usize, 100usize, 16usize, 401usize);
    let hidden = rand_tensor(&[b, frames, h], 1);
    let wave = rand_tensor(&[b, 3, t], 2);
    let targets: Vec<f32> = (0..b * t)
        .flat_map(|i| {
            let p = ((i % t) as f32 / t as f32).min(0.9);
            [p * 0.5, p * 0.5, 1.0 - p]
        })
        .collect();
    let targets = Tensor::from_f32(&[b, t, 3], targets).unwrap();
    let mut a = PhasePickHead::new(HeadConfig::picking(h, 8), 5).unwrap();
    let mut m = PhasePickHead::new(HeadConfig::picking(h, 8), 5).unwrap();
    let mut sa = pack(&mut a, &Device::Cpu);
    let mut sm = pack(&mut m, &d);
    sm.set_compute_dtype(&mut m, DType::BF16).unwrap();
    let (la, ca) = a.forward(&hidden, &wave).unwrap();
    let (lb, cb) = m
        .forward(
            &bf16(&hidden.to_device(&d).unwrap()),
            &bf16(&wave.to_device(&d).unwrap()),
        )
        .unwrap();
    let e = rel_err(&lb.to_vec_f32().unwrap(), &la.to_vec_f32().unwrap());
    println!("picking head bf16 logits rel err {e:.2e}");
    assert!(e < OUT_TOL);
    let (_, dla) = pick_loss(&la, &targets).unwrap();
    let (_, dlb) = pick_loss(&lb, &bf16(&targets.to_device(&d).unwrap())).unwrap();
    let dha = a.backward(&ca, &dla, &mut sa.grads).unwrap();
    let dhb = m.backward(&cb, &dlb, &mut sm.grads).unwrap();
    assert!(rel_err(&dhb.to_vec_f32().unwrap(), &dha.to_vec_f32().unwrap()) < GRAD_TOL);
    compare_grads("picking head", &grads_of(&sm), &grads_of(&sa));

    let cfg = HeadConfig {
        hidden: h,
        in_chans: 3,
        channels: 8,
        classes: 3,
        dropout: 0.2,
    };
    let mut a = EventHead::new(cfg.clone(), 9).unwrap();
    let mut m = EventHead::new(cfg, 9).unwrap();
    let mut sa = pack(&mut a, &Device::Cpu);
    let mut sm = pack(&mut m, &d);
    sm.set_compute_dtype(&mut m, DType::BF16).unwrap();
    let (la, ca) = a.forward(&hidden).unwrap();
    let (lb, cb) = m.forward(&bf16(&hidden.to_device(&d).unwrap())).unwrap();
    let e = rel_err(&lb.to_vec_f32().unwrap(), &la.to_vec_f32().unwrap());
    println!("event head bf16 logits rel err {e:.2e}");
    // The logits come from time means of BatchNorm outputs, which are near zero by
    // construction: the rounding of each activation weighs more, hence the looser bound.
    assert!(e < GRAD_TOL);
    let (_, dla) = class_loss(&la, &[0, 2]).unwrap();
    let (_, dlb) = class_loss(&lb, &[0, 2]).unwrap();
    a.backward(&ca, &dla, &mut sa.grads).unwrap();
    m.backward(&cb, &dlb, &mut sm.grads).unwrap();
    compare_grads("event head", &grads_of(&sm), &grads_of(&sa));
}

#[test]
fn loading_weights_refreshes_the_compute_copies() {
    let dir = std::env::temp_dir().join(format!("seisfuse-mp-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vit.safetensors");
    let mut src = Vit::new(micro_vit(), 11).unwrap();
    seisfuse::weights::save_from(&mut src, &path, true).unwrap();
    let mut dst = Vit::new(micro_vit(), 12).unwrap();
    let mut store = pack(&mut dst, &Device::Cpu);
    store.set_compute_dtype(&mut dst, DType::BF16).unwrap();
    let opts = seisfuse::weights::LoadOptions {
        strict: true,
        ..Default::default()
    };
    seisfuse::weights::load_into_with(&mut dst, &path, &opts).unwrap();
    dst.visit("", &mut |n, p| {
        let want = p.value.to_dtype(DType::BF16)?.to_vec_f32()?;
        let got = p.compute.as_ref().expect("compute copy").to_vec_f32()?;
        assert_eq!(
            got, want,
            "{n}: the compute copy must follow the loaded master"
        );
        Ok(())
    })
    .unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

/// bf16 inference (a bf16 compute copy, bf16 inputs) of a model with BatchNorm: the running
/// statistics stay fp32.
#[test]
fn bf16_inference_of_a_batchnorm_head_follows_fp32() {
    use seisfuse::models::seislm_heads::{HeadConfig, PhasePickHead};
    let hidden = rand_tensor(&[2, 20, 16], 3);
    let wave = rand_tensor(&[2, 3, 81], 4);
    let mut a = PhasePickHead::new(HeadConfig::picking(16, 19), 2).unwrap();
    // A few train-mode passes give the running statistics non-trivial values.
    for _ in 0..3 {
        a.forward(&hidden, &wave).unwrap();
    }
    a.set_training(false);
    let (want, _) = a.forward(&hidden, &wave).unwrap();
    let mut store = pack(&mut a, &Device::Cpu);
    store.set_compute_dtype(&mut a, DType::BF16).unwrap();
    a.visit("", &mut |n, p| {
        assert_eq!(p.value.dtype, DType::F32, "{n}");
        Ok(())
    })
    .unwrap();
    let (got, _) = a.forward(&bf16(&hidden), &bf16(&wave)).unwrap();
    let e = rel_err(&got.to_vec_f32().unwrap(), &want.to_vec_f32().unwrap());
    println!("bf16 inference of the picking head: rel err {e:.2e}");
    assert!(e < OUT_TOL);
}
