//! Each fusion model trains on pairs of the paired synthetic set (src/data/synth/paired.rs)
//! through the uniform API (ParamStore, `loss_and_backward`, AdamW): a few steps on one small
//! batch with the tiny presets (sfm-tiny at 32×32, seislm-tiny), and the loss falls.

mod common;
use common::paired_batch;
use seisfuse::models::fusion::{
    freeze_encoders, Binding, BindingConfig, EarlyFusion, EarlyFusionConfig, EncoderConfig,
    FusionModel, Inputs, LateFusion, LateFusionConfig, MidFusion, MidFusionConfig,
};
use seisfuse::nn::ParamStore;
use seisfuse::ops::AdamWConfig;
use seisfuse::train::AdamW;
use seisfuse::Device;

const SIZE: usize = 32;
const SAMPLES: usize = 601;
const STEPS: usize = 12;

fn encoders() -> EncoderConfig {
    EncoderConfig::tiny().with_image(SIZE, SIZE).unwrap()
}

/// Trains `m` for STEPS steps on one batch of 8 pairs; returns the losses.
fn train<M: FusionModel>(what: &str, m: &mut M, lr: f32, freeze: bool) -> Vec<f32> {
    let (x, w, y) = paired_batch(8, SIZE, SAMPLES, 3);
    let mut store = ParamStore::pack(m, &Device::Cpu).unwrap();
    if freeze {
        freeze_encoders(m, &mut store, true);
    }
    let mut opt = AdamW::new(AdamWConfig {
        lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    });
    let t0 = std::time::Instant::now();
    let mut losses = Vec::new();
    for step in 0..STEPS {
        m.set_step(step as u32);
        store.zero_grad().unwrap();
        let s = m.loss_and_backward(&x, &w, &y, &mut store.grads).unwrap();
        assert!(s.loss.loss.is_finite(), "{what}: step {step}");
        opt.step(&mut store, lr).unwrap();
        losses.push(s.loss.loss);
    }
    println!(
        "{what}: loss {:?} in {:.1} s",
        losses.iter().map(|l| format!("{l:.3}")).collect::<Vec<_>>(),
        t0.elapsed().as_secs_f32()
    );
    let first = losses[..2].iter().sum::<f32>() / 2.0;
    let last = losses[STEPS - 2..].iter().sum::<f32>() / 2.0;
    assert!(
        last < 0.8 * first,
        "{what}: the loss falls: {first} → {last}"
    );
    losses
}

#[test]
fn binding_trains() {
    let mut m = Binding::new(BindingConfig::new(encoders(), 32), 1).unwrap();
    train("binding", &mut m, 2e-3, false);
}

#[test]
fn late_fusion_and_the_baselines_train() {
    let mut m = LateFusion::new(LateFusionConfig::new(encoders(), tiny_head()), 1).unwrap();
    train("late fusion", &mut m, 2e-3, false);
    let mut c = LateFusionConfig::new(encoders(), tiny_head());
    c.inputs = Inputs::Image;
    train(
        "image only",
        &mut LateFusion::new(c, 1).unwrap(),
        2e-3,
        false,
    );
    let mut c = LateFusionConfig::new(encoders(), tiny_head());
    c.inputs = Inputs::Wave;
    train(
        "waveform only, frozen encoder",
        &mut LateFusion::new(c, 1).unwrap(),
        5e-3,
        true,
    );
}

#[test]
fn intermediate_fusion_trains() {
    let mut c = MidFusionConfig::tiny(2);
    c.encoders = encoders();
    train(
        "intermediate fusion",
        &mut MidFusion::new(c, 1).unwrap(),
        2e-3,
        false,
    );
}

#[test]
fn early_fusion_trains() {
    let mut c = EarlyFusionConfig::tiny(2);
    c.image = c.image.with_image(SIZE, SIZE).unwrap();
    train(
        "early fusion",
        &mut EarlyFusion::new(c, 1).unwrap(),
        2e-3,
        false,
    );
}

fn tiny_head() -> seisfuse::models::fusion::HeadConfig {
    LateFusionConfig::tiny(2).head
}
