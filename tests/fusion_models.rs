//! The fusion models (src/models/fusion) on the CPU at toy sizes: finite-difference checks of
//! the backward pass of each model (encoder, fusion and head parameters, the logit scale, the
//! waveform gradient through early fusion's mel front end), parameter names and prefixes,
//! freezing the encoders, output shapes, and bad input.

mod common;
use common::*;
use seisfuse::models::fusion::{
    freeze_encoders, loss, Binding, BindingConfig, EarlyFusion, EarlyFusionConfig, EncoderConfig,
    FusionModel, HeadConfig, Inputs, LateFusion, LateFusionConfig, MidFusion, MidFusionConfig,
    Objective, Pool,
};
use seisfuse::models::seislm::SeislmConfig;
use seisfuse::models::sfm::VitConfig;
use seisfuse::nn::ParamStore;
use seisfuse::{Device, Tensor};

/// Encoders small enough for finite differences: a 16×16 ViT and a one-layer SeisLM.
fn toy_encoders() -> EncoderConfig {
    EncoderConfig {
        image: VitConfig {
            img_h: 16,
            img_w: 16,
            in_chans: 1,
            patch: 8,
            dim: 16,
            depth: 1,
            heads: 2,
            mlp_ratio: 2.0,
            eps: 1e-6,
        },
        wave: SeislmConfig {
            in_chans: 3,
            conv_layers: vec![(8, 3, 2), (8, 3, 2)],
            hidden: 12,
            layers: 1,
            heads: 2,
            ffn: 16,
            pos_kernel: 4,
            pos_groups: 2,
            eps: 1e-5,
            masked_spec_embed: false,
        },
    }
}

const SAMPLES: usize = 96;

fn batch(n: usize) -> (Tensor, Tensor, Tensor) {
    paired_batch(n, 16, SAMPLES, 11)
}

fn total_loss<M: FusionModel>(m: &M, x: &Tensor, w: &Tensor, y: &Tensor) -> f64 {
    let (out, _) = m.forward(x, w, true).unwrap();
    loss(m.objective(), &out.logits, y).unwrap().0.loss as f64
}

/// Central differences of the loss against the store's gradient at (name, index) pairs.
fn check_params<M: FusionModel>(
    what: &str,
    m: &mut M,
    store: &mut ParamStore,
    probes: &[(&str, usize)],
) {
    let (x, w, y) = batch(3);
    m.set_step(5);
    store.zero_grad().unwrap();
    m.loss_and_backward(&x, &w, &y, &mut store.grads).unwrap();
    let h = 5e-3f32;
    for &(name, i) in probes {
        let analytic = grad_of(store, name)[i] as f64;
        let old = poke(m, name, i, 0.0);
        poke(m, name, i, old + h);
        let lp = total_loss(m, &x, &w, &y);
        poke(m, name, i, old - h);
        let lm = total_loss(m, &x, &w, &y);
        poke(m, name, i, old);
        let numeric = (lp - lm) / (2.0 * h as f64);
        let err = (analytic - numeric).abs();
        println!("{what} d {name}[{i}]: analytic {analytic:.6e}, numeric {numeric:.6e}");
        assert!(
            err < 1e-3 + 3e-2 * numeric.abs(),
            "{what} d {name}[{i}]: analytic {analytic} vs numeric {numeric}"
        );
    }
}

fn head() -> HeadConfig {
    HeadConfig::new(&[10, 6], 0.2, 2)
}

#[test]
fn binding_gradients_match_differences() {
    let mut cfg = BindingConfig::new(toy_encoders(), 8);
    cfg.logit_scale_init = 3.0; // a softer softmax than 1/0.07 at toy sizes
    let mut m = Binding::new(cfg, 1).unwrap();
    let mut store = pack(&mut m, &Device::Cpu);
    check_params(
        "binding",
        &mut m,
        &mut store,
        &[
            ("fusion.log_logit_scale", 0),
            ("fusion.image.proj.weight", 3),
            ("fusion.wave.proj.weight", 17),
            ("fusion.image.norm.weight", 1),
            ("fusion.wave.norm.bias", 2),
            ("image.blocks.0.attn.qkv.weight", 5),
            ("image.cls_token", 2),
            ("wave.encoder.layers.0.attention.k_proj.weight", 7),
            ("wave.feature_extractor.conv_layers.0.conv.weight", 4),
        ],
    );
}

#[test]
fn late_fusion_gradients_match_differences() {
    let mut m = LateFusion::new(LateFusionConfig::new(toy_encoders(), head()), 2).unwrap();
    let mut store = pack(&mut m, &Device::Cpu);
    check_params(
        "late fusion",
        &mut m,
        &mut store,
        &[
            ("head.weight", 1),
            ("head.bias", 0),
            ("fusion.mlp.0.weight", 4),
            ("fusion.mlp.1.bias", 2),
            ("image.blocks.0.mlp.fc1.weight", 3),
            ("wave.feature_projection.projection.weight", 2),
            ("wave.encoder.layer_norm.weight", 5),
        ],
    );
}

#[test]
fn intermediate_fusion_gradients_match_differences() {
    let mut cfg = MidFusionConfig::new(toy_encoders(), 8, 2, 2, head());
    cfg.mlp_ratio = 2.0;
    cfg.wave_pool = Pool::Cls;
    cfg.image_pool = Pool::Mean;
    let mut m = MidFusion::new(cfg, 3).unwrap();
    let mut store = pack(&mut m, &Device::Cpu);
    check_params(
        "intermediate fusion",
        &mut m,
        &mut store,
        &[
            ("fusion.layers.0.image.attn.k_proj.weight", 5),
            ("fusion.layers.0.wave.attn.q_proj.weight", 3),
            ("fusion.layers.1.image.norm_context.weight", 2),
            ("fusion.layers.1.wave.mlp.fc2.weight", 6),
            ("fusion.wave_in.weight", 1),
            ("fusion.image_in.bias", 4),
            ("fusion.image_norm.bias", 0),
            ("head.bias", 1),
            ("image.norm.weight", 2),
            (
                "wave.encoder.layers.0.feed_forward.intermediate_dense.weight",
                3,
            ),
        ],
    );
}

fn early_cfg(section: bool, average: bool) -> EarlyFusionConfig {
    let mut c = EarlyFusionConfig::new(toy_encoders().image, section, head());
    c.mel.average_channels = average;
    c.mel.f_min = 1.0;
    c
}

#[test]
fn early_fusion_gradients_match_differences() {
    for (section, average) in [(true, true), (false, false)] {
        let mut m = EarlyFusion::new(early_cfg(section, average), 4).unwrap();
        assert_eq!(
            m.image.patch_embed.in_chans,
            section as usize + if average { 1 } else { 3 }
        );
        let mut store = pack(&mut m, &Device::Cpu);
        check_params(
            &format!("early fusion (section {section}, average {average})"),
            &mut m,
            &mut store,
            &[
                ("image.patch_embed.proj.weight", 70),
                ("image.blocks.0.attn.proj.weight", 3),
                ("fusion.mlp.0.weight", 1),
                ("head.weight", 0),
            ],
        );
    }
}

#[test]
fn early_fusion_waveform_gradient_matches_differences() {
    let m = EarlyFusion::new(early_cfg(true, true), 5).unwrap();
    let mut m = m;
    let mut store = pack(&mut m, &Device::Cpu);
    let (x, w, y) = batch(2);
    let (out, cache) = m.forward(&x, &w, false).unwrap();
    let (_, dlogits) = loss(Objective::Classify, &out.logits, &y).unwrap();
    store.zero_grad().unwrap();
    let dw = m
        .backward_with_wave_grad(&cache, &dlogits, &mut store.grads)
        .unwrap();
    assert_eq!(dw.shape, w.shape);
    let dwv = dw.to_vec_f32().unwrap();
    let base = w.to_vec_f32().unwrap();
    let f = |v: &[f32]| {
        let wt = Tensor::from_f32(&w.shape, v.to_vec()).unwrap();
        let (o, _) = m.forward(&x, &wt, false).unwrap();
        loss(Objective::Classify, &o.logits, &y).unwrap().0.loss as f64
    };
    // The log of small mel powers bends sharply: a small step.
    let h = 2e-3f32;
    for &i in &[10usize, 95, 100, 250, 3 * SAMPLES + 40, 6 * SAMPLES - 1] {
        let mut v = base.clone();
        v[i] += h;
        let lp = f(&v);
        v[i] -= 2.0 * h;
        let lm = f(&v);
        let numeric = (lp - lm) / (2.0 * h as f64);
        let analytic = dwv[i] as f64;
        println!("early fusion d wave[{i}]: analytic {analytic:.6e}, numeric {numeric:.6e}");
        assert!(
            (analytic - numeric).abs() < 2e-4 + 5e-2 * numeric.abs(),
            "d wave[{i}]: analytic {analytic} vs numeric {numeric}"
        );
    }
}

#[test]
fn names_prefixes_and_freezing() {
    let enc = toy_encoders();
    let mut late = LateFusion::new(LateFusionConfig::new(enc.clone(), head()), 1).unwrap();
    let mut store = pack(&mut late, &Device::Cpu);
    for e in store.entries() {
        assert!(
            ["image.", "wave.", "fusion.", "head."]
                .iter()
                .any(|p| e.name.starts_with(p)),
            "{}",
            e.name
        );
    }
    assert!(store.entry("image.blocks.0.attn.qkv.weight").is_some());
    assert!(store
        .entry("wave.encoder.layers.0.attention.q_proj.weight")
        .is_some());
    assert!(store.entry("fusion.mlp.1.weight").is_some());
    assert!(store.entry("head.weight").is_some());
    assert!(store.entry("wave.masked_spec_embed").is_none());

    // Frozen: the encoders are not trained and get no gradient; the head still does.
    freeze_encoders(&mut late, &mut store, true);
    assert!(store
        .entries()
        .iter()
        .all(|e| e.trainable != (e.name.starts_with("image.") || e.name.starts_with("wave."))));
    let (x, w, y) = batch(2);
    store.zero_grad().unwrap();
    late.loss_and_backward(&x, &w, &y, &mut store.grads)
        .unwrap();
    let g = grads_of(&store);
    assert!(g
        .keys()
        .all(|k| k.starts_with("fusion.") || k.starts_with("head.")));
    let enc_grad = store
        .grad("image.blocks.0.attn.qkv.weight")
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert!(enc_grad.iter().all(|&v| v == 0.0));
    assert!(g["head.weight"].iter().any(|&v| v != 0.0));
    freeze_encoders(&mut late, &mut store, false);
    assert_eq!(store.num_trainable(), store.num_params());

    let mut b = Binding::new(BindingConfig::new(enc.clone(), 8), 1).unwrap();
    let s = pack(&mut b, &Device::Cpu);
    for n in [
        "fusion.image.norm.weight",
        "fusion.image.proj.weight",
        "fusion.wave.proj.weight",
        "fusion.log_logit_scale",
    ] {
        assert!(s.entry(n).is_some(), "{n}");
    }
    assert!(s.entry("fusion.image.proj.bias").is_none(), "no bias");
    assert!((b.logit_scale().unwrap() - 1.0 / 0.07).abs() < 1e-3);

    let mut mid = MidFusion::new(MidFusionConfig::new(enc, 8, 1, 2, head()), 1).unwrap();
    let s = pack(&mut mid, &Device::Cpu);
    for n in [
        "fusion.image_in.weight",
        "fusion.layers.0.image.attn.q_proj.weight",
        "fusion.layers.0.wave.norm_context.bias",
        "fusion.wave_norm.weight",
    ] {
        assert!(s.entry(n).is_some(), "{n}");
    }
}

#[test]
fn outputs_have_the_documented_shapes_and_baselines_ignore_the_other_modality() {
    let enc = toy_encoders();
    let (x, w, _) = batch(3);
    let empty = Tensor::from_f32(&[0], vec![]).unwrap();

    let b = Binding::new(BindingConfig::new(enc.clone(), 8), 1).unwrap();
    let (o, _) = b.forward(&x, &w, false).unwrap();
    assert_eq!(o.logits.shape, [3, 3]);
    let (ei, ew) = o.embeddings.unwrap();
    assert_eq!(
        (ei.shape.clone(), ew.shape.clone()),
        (vec![3, 8], vec![3, 8])
    );
    assert_eq!(
        b.embed_images(&x).unwrap().to_vec_f32().unwrap(),
        ei.to_vec_f32().unwrap()
    );
    assert_eq!(
        b.embed_waves(&w).unwrap().to_vec_f32().unwrap(),
        ew.to_vec_f32().unwrap()
    );
    assert_eq!(b.objective(), Objective::Contrastive);

    for inputs in [Inputs::Image, Inputs::Wave] {
        let mut cfg = LateFusionConfig::new(enc.clone(), head());
        cfg.inputs = inputs;
        let m = LateFusion::new(cfg, 1).unwrap();
        let (xi, wi) = match inputs {
            Inputs::Image => (&x, &empty),
            _ => (&empty, &w),
        };
        let (o, _) = m.forward(xi, wi, false).unwrap();
        assert_eq!(o.logits.shape, [3, 2], "{inputs:?}");
    }

    let m = EarlyFusion::new(early_cfg(false, true), 1).unwrap();
    let (o, _) = m.forward(&empty, &w, false).unwrap();
    assert_eq!(o.logits.shape, [3, 2]);
    let mel = m.mel_images(&w).unwrap();
    assert_eq!(mel.shape, [3, 1, 16, 16]);
    // z-scored per image
    for img in mel.to_vec_f32().unwrap().chunks(256) {
        let mean = img.iter().sum::<f32>() / 256.0;
        assert!(mean.abs() < 1e-4, "mean {mean}");
    }

    // eval mode is deterministic; train mode applies dropout
    let m = LateFusion::new(LateFusionConfig::new(enc, head()), 1).unwrap();
    let a = m
        .forward(&x, &w, false)
        .unwrap()
        .0
        .logits
        .to_vec_f32()
        .unwrap();
    let b2 = m
        .forward(&x, &w, false)
        .unwrap()
        .0
        .logits
        .to_vec_f32()
        .unwrap();
    let t = m
        .forward(&x, &w, true)
        .unwrap()
        .0
        .logits
        .to_vec_f32()
        .unwrap();
    assert_eq!(a, b2);
    assert_ne!(a, t);
}

#[test]
fn bad_input_is_an_error() {
    let enc = toy_encoders();
    let (x, w, y) = batch(3);
    let (x2, w2, _) = batch(2);
    let b = Binding::new(BindingConfig::new(enc.clone(), 8), 1).unwrap();
    assert!(b.forward(&x, &w2, false).is_err(), "unpaired batch");
    let m = LateFusion::new(LateFusionConfig::new(enc.clone(), head()), 1).unwrap();
    assert!(m.forward(&x2, &w, false).is_err(), "unpaired batch");
    let (o, _) = m.forward(&x, &w, false).unwrap();
    assert!(loss(
        Objective::Classify,
        &o.logits,
        &Tensor::from_i32(&[2], vec![0, 1]).unwrap()
    )
    .is_err());
    assert!(loss(Objective::Classify, &o.logits, &y).is_ok());
    assert!(LateFusion::new(
        LateFusionConfig::new(enc.clone(), HeadConfig::new(&[4], 0.5, 1)),
        1
    )
    .is_err());
    assert!(LateFusion::new(
        LateFusionConfig::new(enc.clone(), HeadConfig::new(&[4], 1.0, 2)),
        1
    )
    .is_err());
    assert!(
        MidFusion::new(MidFusionConfig::new(enc.clone(), 9, 1, 2, head()), 1).is_err(),
        "9 % 2 heads"
    );
    let mut c = early_cfg(true, true);
    c.mel.normalize = seisfuse::dsp::images::Normalize::MinMax;
    assert!(EarlyFusion::new(c, 1).is_err());
    let m = EarlyFusion::new(early_cfg(true, true), 1).unwrap();
    assert!(m.forward(&x2, &w, false).is_err(), "sections do not match");
    let bf = w.to_dtype(seisfuse::DType::BF16).unwrap();
    assert!(
        m.forward(&x, &bf, false).is_err(),
        "the mel front end takes f32"
    );
}

/// The CUDA device; a failure (not a skip) when CUDA cannot start.
fn require_cuda() -> Device {
    match seisfuse::backend::cuda::CudaBackend::get(0) {
        Ok(b) => Device::Cuda(b),
        Err(e) => panic!("this test needs a CUDA GPU: {e:#}"),
    }
}

/// One training step of a fresh model on `d`: the loss, the logits and the whole flat
/// gradient buffer.
fn step_on<M: FusionModel>(mut m: M, d: &Device, size: usize, samples: usize) -> Vec<Vec<f32>> {
    let mut store = ParamStore::pack(&mut m, d).unwrap();
    let (x, w, y) = paired_batch(4, size, samples, 21);
    let (x, w) = (x.to_device(d).unwrap(), w.to_device(d).unwrap());
    m.set_step(2);
    store.zero_grad().unwrap();
    let s = m.loss_and_backward(&x, &w, &y, &mut store.grads).unwrap();
    vec![
        vec![s.loss.loss],
        s.output.logits.to_vec_f32().unwrap(),
        store.grads.flat().unwrap().to_vec_f32().unwrap(),
    ]
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn fusion_models_parity_cpu_vs_cuda() {
    let gpu = require_cuda();
    // The tiny presets at 32×32 and 601 samples (the demo's sizes), f32.
    let enc = EncoderConfig::tiny().with_image(32, 32).unwrap();
    let (size, samples) = (32, 601);
    let check = |what: &str, cpu: Vec<Vec<f32>>, cuda: Vec<Vec<f32>>| {
        for (i, (g, w)) in cuda.iter().zip(&cpu).enumerate() {
            let e = rel_err(g, w);
            println!("{what} output {i} (loss, logits, gradients): {e:.2e}");
            assert!(e < 1e-4, "{what} output {i}: {e:.3e}");
        }
    };
    let bind = || Binding::new(BindingConfig::new(enc.clone(), 32), 1).unwrap();
    check(
        "binding",
        step_on(bind(), &Device::Cpu, size, samples),
        step_on(bind(), &gpu, size, samples),
    );
    let late = || LateFusion::new(LateFusionConfig::new(enc.clone(), head()), 1).unwrap();
    check(
        "late fusion",
        step_on(late(), &Device::Cpu, size, samples),
        step_on(late(), &gpu, size, samples),
    );
    let mid = || {
        let mut c = MidFusionConfig::tiny(2);
        c.encoders = enc.clone();
        MidFusion::new(c, 1).unwrap()
    };
    check(
        "intermediate fusion",
        step_on(mid(), &Device::Cpu, size, samples),
        step_on(mid(), &gpu, size, samples),
    );
    let early = || {
        let mut c = EarlyFusionConfig::tiny(2);
        c.image = c.image.with_image(size, size).unwrap();
        EarlyFusion::new(c, 1).unwrap()
    };
    check(
        "early fusion",
        step_on(early(), &Device::Cpu, size, samples),
        step_on(early(), &gpu, size, samples),
    );
}
