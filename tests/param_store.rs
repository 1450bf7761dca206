//! The parameter store: packing, views, the one-launch optimizer against a per-tensor
//! reference, freezing, learning-rate scales, clipping, non-finite gradients, determinism, and
//! what a steady-state training step asks of the device (the counters).

mod common;
use common::*;
use seisfuse::backend::counters;
use seisfuse::models::sfm::{Vit, VitConfig};
use seisfuse::nn::store::ALIGN;
use seisfuse::nn::{ParamStore, Parameters};
use seisfuse::ops::{self, AdamWConfig};
use seisfuse::train::AdamW;
use seisfuse::{DType, Device, Tensor};

fn micro() -> VitConfig {
    VitConfig {
        img_h: 8,
        img_w: 12,
        in_chans: 1,
        patch: 4,
        dim: 8,
        depth: 2,
        heads: 2,
        mlp_ratio: 2.0,
        eps: 1e-6,
    }
}

fn cfg() -> AdamWConfig {
    AdamWConfig {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.05,
    }
}

/// One forward + backward of the micro ViT into the store's gradients.
fn backward(vit: &Vit, store: &mut ParamStore, seed: u64) {
    let img = rand_tensor(&[2, 1, 8, 12], seed);
    let (out, cache) = vit.forward(&img, None).unwrap();
    let up = rand_tensor(&out.shape, seed + 1);
    vit.backward(&cache, &up, &[], false, &mut store.grads)
        .unwrap();
}

#[test]
fn packing_keeps_values_and_makes_views() {
    let mut vit = Vit::new(micro(), 3).unwrap();
    let before: Vec<(String, Vec<f32>)> = {
        let mut v = Vec::new();
        vit.visit("", &mut |n, p| {
            v.push((n.to_string(), p.value.to_vec_f32()?));
            Ok(())
        })
        .unwrap();
        v
    };
    let store = pack(&mut vit, &Device::Cpu);
    assert_eq!(store.entries().len(), before.len());
    for (e, (name, vals)) in store.entries().iter().zip(&before) {
        assert_eq!(&e.name, name, "visit order is the store's order");
        assert_eq!(e.offset % ALIGN, 0, "{name} is aligned");
        assert_eq!(&store.value(name).unwrap().to_vec_f32().unwrap(), vals);
    }
    // The model's parameters are views of the store: writing one is seen by the store.
    poke(&mut vit, "norm.bias", 3, 42.0);
    assert_eq!(
        store.value("norm.bias").unwrap().to_vec_f32().unwrap()[3],
        42.0
    );
    vit.visit("", &mut |n, p| {
        assert!(p.value.shares_storage(store.values()), "{n} is a view");
        Ok(())
    })
    .unwrap();
    // timm's groups: no decay for biases, norms, tokens and the position table.
    let decayed = |n: &str| store.entry(n).unwrap().decay;
    assert!(decayed("blocks.0.attn.qkv.weight") && decayed("patch_embed.proj.weight"));
    assert!(!decayed("blocks.0.attn.qkv.bias") && !decayed("blocks.0.norm1.weight"));
    assert!(!decayed("cls_token") && !decayed("pos_embed"));
    assert!(!store.entry("pos_embed").unwrap().trainable, "fixed table");
    assert_eq!(store.num_params(), vit.num_params().unwrap());
}

#[test]
fn a_gradient_for_a_parameter_outside_the_store_is_an_error() {
    let mut a = Vit::new(micro(), 1).unwrap();
    let b = Vit::new(micro(), 2).unwrap();
    let mut store = pack(&mut a, &Device::Cpu);
    let img = rand_tensor(&[1, 1, 8, 12], 1);
    let (out, cache) = b.forward(&img, None).unwrap();
    let e = b
        .backward(&cache, &out, &[], false, &mut store.grads)
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("not part of this parameter store"),
        "{e:#}"
    );
}

/// The store's one-launch AdamW against ops::adamw_step run tensor by tensor with each
/// parameter's own weight decay and learning rate: frozen parameters stay, the rest match.
#[test]
fn one_launch_adamw_matches_per_tensor_steps() {
    let mut vit = Vit::new(micro(), 3).unwrap();
    let mut store = pack(&mut vit, &Device::Cpu);
    assert_eq!(store.set_trainable("blocks.1.", false), 12);
    assert_eq!(store.set_lr_scale("blocks.0.", 0.5), 12);
    // reference: per-parameter state
    let mut reference: Vec<(String, Tensor, Tensor, Tensor)> = store
        .entries()
        .iter()
        .map(|e| {
            let v = store.value(&e.name).unwrap().try_clone().unwrap();
            let z = || Tensor::zeros(&e.shape, DType::F32, &Device::Cpu).unwrap();
            (e.name.clone(), v, z(), z())
        })
        .collect();
    let mut opt = AdamW::new(cfg());
    for step in 1..=3u32 {
        store.zero_grad().unwrap();
        backward(&vit, &mut store, 10 * step as u64);
        for (name, v, m, s) in &mut reference {
            let e = store.entry(name).unwrap().clone();
            if !e.trainable {
                continue;
            }
            let mut c = cfg();
            c.lr = 1e-2 * e.lr_scale;
            if !e.decay {
                c.weight_decay = 0.0;
            }
            let g = store.grad(name).unwrap().try_clone().unwrap();
            ops::adamw_step(v, &g, m, s, None, &c, step).unwrap();
        }
        opt.step(&mut store, 1e-2).unwrap();
    }
    for (name, v, _, _) in &reference {
        let got = store.value(name).unwrap().to_vec_f32().unwrap();
        let want = v.to_vec_f32().unwrap();
        assert_eq!(got, want, "{name}");
    }
    let frozen = store.value("blocks.1.mlp.fc1.weight").unwrap();
    let fresh = Vit::new(micro(), 3).unwrap();
    assert_eq!(
        frozen.to_vec_f32().unwrap(),
        fresh.blocks[1].mlp.fc1.weight.value.to_vec_f32().unwrap(),
        "a frozen parameter keeps its value"
    );
}

#[test]
fn the_norm_covers_the_trainable_parameters_and_clipping_follows_torch() {
    let mut vit = Vit::new(micro(), 5).unwrap();
    let mut store = pack(&mut vit, &Device::Cpu);
    backward(&vit, &mut store, 7);
    let want: f64 = store
        .entries()
        .iter()
        .filter(|e| e.trainable)
        .map(|e| {
            grad_of(&store, &e.name)
                .iter()
                .map(|&g| (g as f64) * (g as f64))
                .sum::<f64>()
        })
        .sum::<f64>()
        .sqrt();
    // Clipping to a tenth of the norm: the update equals AdamW on g · max / (norm + 1e-6).
    let max_norm = (want / 10.0) as f32;
    let grads = store.grads.flat().unwrap().try_clone().unwrap();
    let mut clipped = grads.try_clone().unwrap();
    ops::scale_assign(&mut clipped, max_norm / (want as f32 + 1e-6)).unwrap();
    let mut reference = store.values().try_clone().unwrap();
    let n = reference.numel();
    let (mut m, mut v) = (
        Tensor::zeros(&[n], DType::F32, &Device::Cpu).unwrap(),
        Tensor::zeros(&[n], DType::F32, &Device::Cpu).unwrap(),
    );
    let mut c = cfg();
    c.weight_decay = 0.0;
    ops::adamw_step(&mut reference, &clipped, &mut m, &mut v, None, &c, 1).unwrap();
    let mut opt = AdamW::new(c);
    opt.max_grad_norm = Some(max_norm);
    store.set_trainable("", true);
    let got = opt.step(&mut store, 1e-2).unwrap() as f64;
    // the norm now includes pos_embed (made trainable above) whose gradient is zero
    assert!((got - want).abs() < 1e-5 * want, "norm {got} vs {want}");
    let (a, b) = (
        store.values().to_vec_f32().unwrap(),
        reference.to_vec_f32().unwrap(),
    );
    let e = rel_err(&a, &b);
    assert!(e < 1e-6, "clipped update off by {e:.2e}");
}

#[test]
fn a_non_finite_gradient_names_the_parameter_and_changes_nothing() {
    let mut vit = Vit::new(micro(), 5).unwrap();
    let mut store = pack(&mut vit, &Device::Cpu);
    backward(&vit, &mut store, 7);
    let mut g = store.grad("blocks.0.mlp.fc2.bias").unwrap();
    g.f32s_mut().unwrap()[1] = f32::INFINITY;
    let before = store.values().to_vec_f32().unwrap();
    let mut opt = AdamW::new(cfg());
    let e = format!("{:#}", opt.step(&mut store, 1e-2).unwrap_err());
    assert!(
        e.contains("blocks.0.mlp.fc2.bias") && e.contains("step 1"),
        "{e}"
    );
    assert_eq!(store.values().to_vec_f32().unwrap(), before);
    assert_eq!(opt.t, 0, "the step was not taken");
}

#[test]
fn gradients_are_bit_identical_between_runs() {
    let run = || {
        let mut vit = Vit::new(micro(), 9).unwrap();
        let mut store = pack(&mut vit, &Device::Cpu);
        backward(&vit, &mut store, 3);
        store.grads.flat().unwrap().to_vec_f32().unwrap()
    };
    let (a, b) = (run(), run());
    assert!(a.iter().any(|&g| g != 0.0));
    assert!(
        a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
        "gradients differ between two identical runs"
    );
}

#[test]
fn bf16_gradients_widen_into_the_fp32_store() {
    let mut vit = Vit::new(micro(), 2).unwrap();
    let mut store = pack(&mut vit, &Device::Cpu);
    let p = vit.blocks[0].mlp.fc1.bias.as_ref().unwrap();
    let mut slot = store.grads.slot(p, DType::BF16).unwrap();
    assert_eq!(slot.dtype, DType::BF16);
    let n = slot.numel();
    slot.write_f32(&vec![0.5; n]).unwrap();
    store.grads.commit(slot).unwrap();
    let slot = store.grads.slot(p, DType::BF16).unwrap();
    assert!(
        slot.to_vec_f32().unwrap().iter().all(|&v| v == 0.0),
        "fresh scratch"
    );
    store.grads.commit(slot).unwrap();
    assert!(grad_of(&store, "blocks.0.mlp.fc1.bias")
        .iter()
        .all(|&v| v == 0.5));
}

/// What the issue asks of a steady-state step: after the first step no buffer allocation, and
/// zero_grad + gradient norm + AdamW in at most 4 launches and 1 host read; under mixed
/// precision the same, the bf16 gradients' hand-off included.
#[test]
fn a_steady_state_step_allocates_nothing() {
    for dt in [DType::F32, DType::BF16] {
        let mut vit = Vit::new(micro(), 4).unwrap();
        let mut store = pack(&mut vit, &Device::Cpu);
        store.set_compute_dtype(&mut vit, dt).unwrap();
        let mut opt = AdamW::new(cfg());
        let img = rand_tensor(&[2, 1, 8, 12], 1).to_dtype(dt).unwrap();
        let up = rand_tensor(&[2, 7, 8], 2).to_dtype(dt).unwrap();
        let mut step = |count: bool| {
            let (_, cache) = vit.forward(&img, None).unwrap();
            let c0 = counters::snapshot();
            store.zero_grad().unwrap();
            let c1 = counters::snapshot();
            vit.backward(&cache, &up, &[], false, &mut store.grads)
                .unwrap();
            let c2 = counters::snapshot();
            opt.step(&mut store, 1e-3).unwrap();
            let c3 = counters::snapshot();
            count.then(|| ((c1 - c0) + (c3 - c2), c3 - c0))
        };
        step(false);
        step(false);
        // The counters are per thread: the other tests of this binary do not move them.
        let (opt_part, whole) = step(true).unwrap();
        println!("{dt}: optimizer part: {opt_part}; backward + optimizer: {whole}");
        assert_eq!(opt_part.allocations, 0, "{opt_part}");
        assert!(opt_part.launches <= 4, "{opt_part}");
        assert!(opt_part.host_syncs <= 1, "{opt_part}");
        assert_eq!(whole.allocations, 0, "{whole}");
    }
}

/// Under mixed precision the layers write bf16 gradients into the store's scratch; they reach
/// the fp32 gradients in one launch when first read (instead of a cast and an add per
/// parameter), with the values a cast and an add per parameter give, and the scratch is zero
/// again for the next step.
#[test]
fn bf16_gradients_reach_the_store_in_one_launch() {
    let mut vit = Vit::new(micro(), 6).unwrap();
    let mut store = pack(&mut vit, &Device::Cpu);
    store.set_compute_dtype(&mut vit, DType::BF16).unwrap();
    let img = rand_tensor(&[2, 1, 8, 12], 7)
        .to_dtype(DType::BF16)
        .unwrap();
    let (out, cache) = vit.forward(&img, None).unwrap();
    let up = rand_tensor(&out.shape, 8).to_dtype(DType::BF16).unwrap();
    let step = |store: &mut ParamStore| {
        store.zero_grad().unwrap();
        vit.backward(&cache, &up, &[], false, &mut store.grads)
            .unwrap();
        let c0 = counters::snapshot();
        store.grads.settle().unwrap();
        let c1 = counters::snapshot();
        store.grads.settle().unwrap();
        let c2 = counters::snapshot();
        ((c1 - c0).launches, (c2 - c1).launches, grads_of(store))
    };
    let (first, again, g1) = step(&mut store);
    assert_eq!(
        (first, again),
        (1, 0),
        "one drain launch, then nothing pending"
    );
    // a second step from zeroed gradients gives the same bits: the scratch was left at zero
    let (_, _, g2) = step(&mut store);
    assert_eq!(g1, g2);
    // each parameter's gradient is its bf16 scratch widened: a multiple of a bf16 value
    for (name, g) in &g1 {
        for &v in g {
            let b = seisfuse::Tensor::from_f32(&[1], vec![v])
                .unwrap()
                .to_dtype(DType::BF16)
                .unwrap()
                .to_vec_f32()
                .unwrap()[0];
            assert_eq!(
                v.to_bits(),
                b.to_bits(),
                "{name}: {v} is not a widened bf16"
            );
        }
    }
    assert!(g1.values().any(|g| g.iter().any(|&v| v != 0.0)));
}
