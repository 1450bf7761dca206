//! Whole-model gradient checks of the ViT encoder and MAE on a micro configuration.

mod common;
use common::*;
use seisfuse::models::mae::{Mae, MaeConfig, Masking};
use seisfuse::models::sfm::{Vit, VitConfig};
use seisfuse::nn::{ParamStore, Parameters};
use seisfuse::Device;
use seisfuse::Tensor;

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

/// Compares d loss / d param[i] against central differences for a few elements of each name.
fn check_params<M: Parameters>(
    m: &mut M,
    s: &ParamStore,
    names: &[&str],
    loss: impl Fn(&M) -> f64,
    tol: f64,
) {
    let h = 2e-3f32;
    for name in names {
        let g = grad_of(s, name);
        assert!(!g.is_empty(), "no parameter {name}");
        let scale = g.iter().fold(1e-3f64, |a, &b| a.max(b.abs() as f64));
        for i in (0..g.len()).step_by((g.len() / 5).max(1)).take(6) {
            let x0 = poke(m, name, i, 0.0);
            poke(m, name, i, x0 + h);
            let lp = loss(m);
            poke(m, name, i, x0 - h);
            let lm = loss(m);
            poke(m, name, i, x0);
            let num = (lp - lm) / (2.0 * h as f64);
            let err = (num - g[i] as f64).abs() / scale;
            assert!(
                err < tol,
                "{name}[{i}]: analytic {} vs numeric {num} ({err:.2e})",
                g[i]
            );
        }
        println!("{name}: ok");
    }
}

#[test]
fn vit_gradients_match_finite_differences() {
    let mut vit = Vit::new(micro(), 3).unwrap();
    let mut store = pack(&mut vit, &Device::Cpu);
    let img = rand_tensor(&[2, 1, 8, 12], 1);
    let up = rand_tensor(&[2, 7, 8], 2);
    let upv = up.to_vec_f32().unwrap();
    let (out, cache) = vit.forward(&img, None).unwrap();
    assert_eq!(out.shape, vec![2, 7, 8]);
    store.zero_grad().unwrap();
    let dimg = vit
        .backward(&cache, &up, &[], true, &mut store.grads)
        .unwrap()
        .unwrap();
    let names = [
        "cls_token",
        "patch_embed.proj.weight",
        "patch_embed.proj.bias",
        "blocks.0.attn.qkv.weight",
        "blocks.1.attn.proj.bias",
        "blocks.0.mlp.fc1.weight",
        "blocks.1.norm2.weight",
        "norm.bias",
    ];
    let weighted = |o: &Tensor| -> f64 {
        o.to_vec_f32()
            .unwrap()
            .iter()
            .zip(&upv)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum()
    };
    check_params(
        &mut vit,
        &store,
        &names,
        |v: &Vit| weighted(&v.forward(&img, None).unwrap().0),
        5e-3,
    );
    let x = img.to_vec_f32().unwrap();
    check_grad(
        "vit input",
        &x,
        &upv,
        &dimg.to_vec_f32().unwrap(),
        1e-2,
        5e-3,
        |v| {
            let t = Tensor::from_f32(&[2, 1, 8, 12], v.to_vec()).unwrap();
            vit.forward(&t, None).unwrap().0.to_vec_f32().unwrap()
        },
    );
}

/// Fine-tuning as SFM-Finetune: the position table is trained (with MAE-style masking, rows of
/// dropped patches get no gradient).
#[test]
fn trainable_pos_embed_gradient_matches_finite_differences() {
    let mut vit = Vit::new(micro(), 4).unwrap();
    vit.set_pos_embed_trainable(true);
    let mut store = pack(&mut vit, &Device::Cpu);
    let img = rand_tensor(&[2, 1, 8, 12], 5);
    let up = rand_tensor(&[2, 7, 8], 6);
    let upv = up.to_vec_f32().unwrap();
    let weighted = |o: &Tensor| -> f64 {
        o.to_vec_f32()
            .unwrap()
            .iter()
            .zip(&upv)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum()
    };
    let (_, cache) = vit.forward(&img, None).unwrap();
    store.zero_grad().unwrap();
    vit.backward(&cache, &up, &[], false, &mut store.grads)
        .unwrap();
    check_params(
        &mut vit,
        &store,
        &["pos_embed"],
        |v: &Vit| weighted(&v.forward(&img, None).unwrap().0),
        5e-3,
    );
    // Masked: 3 of 6 patches kept per image; the others' rows stay zero.
    let keep = vec![vec![0usize, 2, 5], vec![1, 2, 4]];
    let up = rand_tensor(&[2, 4, 8], 7);
    let upv = up.to_vec_f32().unwrap();
    let (_, cache) = vit.forward(&img, Some(&keep)).unwrap();
    store.zero_grad().unwrap();
    vit.backward(&cache, &up, &[], false, &mut store.grads)
        .unwrap();
    let g = grad_of(&store, "pos_embed");
    assert!(
        g[(1 + 3) * 8..(1 + 4) * 8].iter().all(|&v| v == 0.0),
        "patch 3 is dropped by both"
    );
    check_params(
        &mut vit,
        &store,
        &["pos_embed"],
        |v: &Vit| {
            let o = v.forward(&img, Some(&keep)).unwrap().0;
            o.to_vec_f32()
                .unwrap()
                .iter()
                .zip(&upv)
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum()
        },
        5e-3,
    );
    // Fixed (the default): no gradient is kept.
    vit.set_pos_embed_trainable(false);
    store.zero_grad().unwrap();
    vit.backward(&cache, &up, &[], false, &mut store.grads)
        .unwrap();
    assert!(grad_of(&store, "pos_embed").iter().all(|&v| v == 0.0));
}

#[test]
fn mae_gradients_match_finite_differences() {
    let cfg = MaeConfig {
        encoder: micro(),
        decoder_dim: 8,
        decoder_depth: 1,
        decoder_heads: 2,
        mask_ratio: 0.5,
        norm_pix_loss: false,
    };
    for norm_pix in [false, true] {
        let mut cfg = cfg.clone();
        cfg.norm_pix_loss = norm_pix;
        let mut mae = Mae::new(cfg.clone(), 5).unwrap();
        let mut store = pack(&mut mae, &Device::Cpu);
        let img = rand_tensor(&[2, 1, 8, 12], 3);
        let masking = Masking::random(9, 1, 2, 6, cfg.len_keep()).unwrap();
        assert_eq!(masking.keep[0].len(), 3);
        let out = mae.forward(&img, masking.clone()).unwrap();
        store.zero_grad().unwrap();
        mae.backward(&out.cache, &mut store.grads).unwrap();
        let names = [
            "mask_token",
            "decoder_pred.weight",
            "decoder_blocks.0.attn.qkv.bias",
            "decoder_embed.weight",
            "blocks.1.mlp.fc2.weight",
            "blocks.0.norm1.bias",
            "cls_token",
            "patch_embed.proj.weight",
        ];
        check_params(
            &mut mae,
            &store,
            &names,
            |m: &Mae| m.forward(&img, masking.clone()).unwrap().loss as f64,
            5e-3,
        );
    }
}
