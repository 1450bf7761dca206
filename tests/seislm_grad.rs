//! Whole-model gradient checks of the SeisLM encoder on micro configurations (CPU, central
//! differences with step 2e-3): every parameter, the waveform gradient, masking through
//! masked_spec_embed, the extract_features gradient, and even and odd positional kernels.

mod common;
use common::*;
use seisfuse::models::seislm::{Seislm, SeislmConfig};
use seisfuse::nn::{ParamStore, Parameters};
use seisfuse::Device;
use seisfuse::Tensor;

fn micro(pos_kernel: usize) -> SeislmConfig {
    SeislmConfig {
        in_chans: 3,
        conv_layers: vec![(4, 3, 2), (6, 3, 2)],
        hidden: 8,
        layers: 2,
        heads: 2,
        ffn: 12,
        pos_kernel,
        pos_groups: 2,
        eps: 1e-5,
        masked_spec_embed: true,
    }
}

const H: f32 = 2e-3;
const TOL: f64 = 5e-3;
const SCALE_FLOOR: f64 = 0.1;

/// Compares d loss / d param[i] against central differences for a few elements of each name.
fn check_params<M: Parameters>(
    m: &mut M,
    s: &ParamStore,
    names: &[String],
    loss: impl Fn(&M) -> f64,
) {
    for name in names {
        let g = grad_of(s, name);
        assert!(!g.is_empty(), "no parameter {name}");
        // The f32 forward passes leave ~1e-4 of noise in a central difference; a gradient
        // smaller than that (k_proj.bias is exactly zero: softmax ignores a shift common to all
        // keys) is compared against this floor instead of its own size.
        let scale = g.iter().fold(SCALE_FLOOR, |a, &b| a.max(b.abs() as f64));
        let mut worst = 0.0f64;
        for i in (0..g.len()).step_by((g.len() / 5).max(1)).take(6) {
            let x0 = poke(m, name, i, 0.0);
            poke(m, name, i, x0 + H);
            let lp = loss(m);
            poke(m, name, i, x0 - H);
            let lm = loss(m);
            poke(m, name, i, x0);
            let num = (lp - lm) / (2.0 * H as f64);
            let err = (num - g[i] as f64).abs() / scale;
            worst = worst.max(err);
            assert!(
                err < TOL,
                "{name}[{i}]: analytic {} vs numeric {num} ({err:.2e})",
                g[i]
            );
        }
        println!("{name}: ok (worst {worst:.2e} of {scale:.2e})");
    }
}

fn dot(t: &Tensor, w: &[f32]) -> f64 {
    t.to_vec_f32()
        .unwrap()
        .iter()
        .zip(w)
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum()
}

#[test]
fn seislm_gradients_match_finite_differences() {
    // Even kernel (last frame dropped) with masking; odd kernel without.
    for (pos_kernel, masked) in [(4usize, true), (3, false)] {
        let cfg = micro(pos_kernel);
        let mut model = Seislm::new(cfg.clone(), 7).unwrap();
        let mut store = pack(&mut model, &Device::Cpu);
        // 23 samples → 11 → 5 frames.
        let (b, l, t) = (2usize, 23usize, 5usize);
        assert_eq!(cfg.frames(l), Some(t));
        let wave = rand_tensor(&[b, 3, l], 1);
        let mask_v: Vec<bool> = (0..b * t).map(|i| i % 3 == 1).collect();
        let mask = masked.then_some(&mask_v[..]);
        // L = Σ up ⊙ last_hidden_state + Σ up_x ⊙ extract_features
        let up = rand_vec(b * t * cfg.hidden, 2, -1.0, 1.0);
        let up_x = rand_vec(b * t * cfg.conv_dim(), 3, -1.0, 1.0);
        let (out, cache) = model.forward(&wave, mask).unwrap();
        assert_eq!(out.last_hidden_state.shape, vec![b, t, cfg.hidden]);
        store.zero_grad().unwrap();
        let dup = Tensor::from_f32(&out.last_hidden_state.shape, up.clone()).unwrap();
        let dupx = Tensor::from_f32(&out.extract_features.shape, up_x.clone()).unwrap();
        let dwave = model
            .backward(&cache, &dup, Some(&dupx), true, &mut store.grads)
            .unwrap()
            .unwrap();
        let loss = |m: &Seislm, w: &Tensor| -> f64 {
            let (o, _) = m.forward(w, mask).unwrap();
            dot(&o.last_hidden_state, &up) + dot(&o.extract_features, &up_x)
        };
        let mut names: Vec<String> = model
            .param_shapes()
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        if !masked {
            // Without masking, masked_spec_embed is unused: its gradient stays zero.
            assert!(grad_of(&store, "masked_spec_embed")
                .iter()
                .all(|&g| g == 0.0));
            names.retain(|n| n != "masked_spec_embed");
        }
        assert!(names
            .iter()
            .any(|n| n == "encoder.pos_conv_embed.conv.weight_g"));
        check_params(&mut model, &store, &names, |m: &Seislm| loss(m, &wave));

        // The waveform gradient, every element.
        let x = wave.to_vec_f32().unwrap();
        let g = dwave.to_vec_f32().unwrap();
        let scale = g.iter().fold(SCALE_FLOOR, |a, &v| a.max(v.abs() as f64));
        let mut worst = 0.0f64;
        for i in 0..x.len() {
            let at = |d: f32| {
                let mut v = x.clone();
                v[i] += d;
                loss(&model, &Tensor::from_f32(&[b, 3, l], v).unwrap())
            };
            let num = (at(H) - at(-H)) / (2.0 * H as f64);
            let err = (num - g[i] as f64).abs() / scale;
            worst = worst.max(err);
            assert!(
                err < TOL,
                "waveform[{i}]: analytic {} vs numeric {num} ({err:.2e})",
                g[i]
            );
        }
        println!(
            "waveform gradient (pos kernel {pos_kernel}): {} elements, worst {worst:.2e}",
            x.len()
        );
    }
}
