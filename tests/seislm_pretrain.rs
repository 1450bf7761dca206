//! SeisLM's wav2vec2 objective: finite-difference checks of each piece, the masking and
//! negative sampling rules, and a short pretraining run of seislm-tiny on synthetic waveforms.

mod common;
use common::*;
use seisfuse::data::synth::waveforms::{generate, WaveformConfig};
use seisfuse::models::seislm_pretrain::{PretrainConfig, SeislmPretrain};
use seisfuse::models::wav2vec2_objective as obj;
use seisfuse::ops::AdamWConfig;
use seisfuse::train::AdamW;
use seisfuse::Tensor;

#[test]
fn contrastive_gradients_match_differences() {
    let (rows, f) = (6, 5);
    let c = rand_vec(rows * f, 1, -1.0, 1.0);
    let q = rand_vec(rows * f, 2, -1.0, 1.0);
    let pos = vec![0, 2, 5];
    let negs = vec![vec![2, 5, 3], vec![0, 5, 1], vec![0, 2, 4]];
    let (mut dc, mut dq) = (vec![0.0; c.len()], vec![0.0; q.len()]);
    obj::contrastive(&c, &q, f, &pos, &negs, 0.3, 1.0, &mut dc, &mut dq);
    let loss_c = |v: &[f32]| {
        let (mut a, mut b) = (vec![0.0; v.len()], vec![0.0; q.len()]);
        vec![obj::contrastive(
            v, &q, f, &pos, &negs, 0.3, 1.0, &mut a, &mut b,
        )]
    };
    check_grad("contrastive dc", &c, &[1.0], &dc, 1e-3, 5e-3, loss_c);
    let loss_q = |v: &[f32]| {
        let (mut a, mut b) = (vec![0.0; c.len()], vec![0.0; v.len()]);
        vec![obj::contrastive(
            &c, v, f, &pos, &negs, 0.3, 1.0, &mut a, &mut b,
        )]
    };
    check_grad("contrastive dq", &q, &[1.0], &dq, 1e-3, 5e-3, loss_q);
}

#[test]
fn negatives_identical_to_the_positive_are_excluded() {
    let f = 4;
    let q = vec![1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0, -1.0, 0.5, 0.0, 2.0];
    let c = rand_vec(12, 3, -1.0, 1.0);
    let (mut dc, mut dq) = (vec![0.0; 12], vec![0.0; 12]);
    let l = obj::contrastive(&c, &q, f, &[0], &[vec![1, 2]], 0.1, 1.0, &mut dc, &mut dq);
    assert!(l.is_finite() && l > 0.0);
    // row 1 equals the positive: it must get no gradient through the negative term
    let (mut dc2, mut dq2) = (vec![0.0; 12], vec![0.0; 12]);
    let l2 = obj::contrastive(&c, &q, f, &[0], &[vec![2]], 0.1, 1.0, &mut dc2, &mut dq2);
    assert!(
        (l - l2).abs() < 1e-6,
        "the identical negative changes nothing: {l} vs {l2}"
    );
}

#[test]
fn perplexity_gradient_matches_differences() {
    let (rows, g, v) = (5, 2, 4);
    let logits = rand_vec(rows * g * v, 4, -2.0, 2.0);
    let weight = vec![1.0, 0.0, 1.0, 1.0, 0.0];
    let mut d = vec![0.0; logits.len()];
    let p = obj::perplexity(&logits, g, v, &weight, Some((1.0, &mut d)));
    assert!(
        p > 1.0 && p <= (g * v) as f32 + 1e-4,
        "perplexity {p} within (1, G·V]"
    );
    check_grad("perplexity", &logits, &[1.0], &d, 1e-3, 5e-3, |x| {
        vec![obj::perplexity(x, g, v, &weight, None)]
    });
}

#[test]
fn straight_through_gradient_is_the_soft_path() {
    // d/dlogits of Σ w · (Σ_v soft_v · code_v) with the Gumbel noise fixed: what the
    // straight-through estimator passes to the logits.
    let (rows, g, v, d, tau) = (3, 2, 5, 3, 0.7);
    let logits = rand_vec(rows * g * v, 5, -1.0, 1.0);
    let code = rand_vec(g * v * d, 6, -1.0, 1.0);
    let w = rand_vec(rows * g * d, 7, -1.0, 1.0);
    let ch = obj::gumbel_choice(&logits, g, v, tau, 9, 1);
    let (mut dcode, mut dl) = (vec![0.0; code.len()], vec![0.0; logits.len()]);
    obj::codevector_backward(&ch, &code, d, &w, &mut dcode, &mut dl);
    let soft_q = |x: &[f32]| -> Vec<f32> {
        let c = obj::gumbel_choice(x, g, v, tau, 9, 1);
        let mut out = vec![0.0; rows * g * d];
        for r in 0..rows * g {
            let gi = r % g;
            for u in 0..v {
                for k in 0..d {
                    out[r * d + k] += c.soft[r * v + u] * code[(gi * v + u) * d + k];
                }
            }
        }
        out
    };
    check_grad(
        "gumbel straight-through",
        &logits,
        &w,
        &dl,
        1e-3,
        5e-3,
        soft_q,
    );
    // the codevector gradient goes to the chosen entries only
    let q = obj::gather_codevectors(&ch, &code, d);
    assert_eq!(q.len(), rows * g * d);
}

#[test]
fn span_masks_and_negatives_follow_the_rules() {
    let (b, t) = (3, 200);
    let m = obj::span_mask(b, t, 0.65, 10, 2, 1, 0).unwrap();
    for tr in 0..b {
        let row = &m[tr * t..(tr + 1) * t];
        let frac = row.iter().filter(|&&x| x).count() as f32 / t as f32;
        assert!(frac > 0.3 && frac < 0.8, "masked fraction {frac}");
    }
    assert_eq!(
        m,
        obj::span_mask(b, t, 0.65, 10, 2, 1, 0).unwrap(),
        "seeded"
    );
    let (pos, negs) = obj::sample_negatives(&m, b, t, 50, 1, 0).unwrap();
    for (p, ns) in pos.iter().zip(&negs) {
        assert!(m[*p]);
        for n in ns {
            assert_ne!(n, p, "a negative is never the frame itself");
            assert!(
                m[*n] && n / t == p / t,
                "negatives are masked frames of the same trace"
            );
        }
    }
    assert!(
        obj::span_mask(1, 5, 0.65, 10, 2, 1, 0).is_err(),
        "a span longer than the trace"
    );
}

#[test]
fn seislm_tiny_pretraining_losses_fall() {
    let mut cfg = PretrainConfig::preset("seislm-tiny").unwrap();
    let env = |k: &str, d: f32| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    cfg.logit_scale = env("PT_SCALE", cfg.logit_scale);
    let lr = env("PT_LR", 2e-3);
    let mut model = SeislmPretrain::new(cfg.clone(), 3).unwrap();
    let mut store = seisfuse::nn::ParamStore::pack(&mut model, &seisfuse::Device::Cpu).unwrap();
    let mut opt = AdamW::new(AdamWConfig {
        lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    });
    const L: usize = 601;
    let wcfg = WaveformConfig::new(L);
    let steps = env("PT_STEPS", 100.0) as usize;
    let (mut first, mut last) = (Vec::new(), Vec::new());
    for step in 0..steps {
        let mut v = Vec::new();
        for i in 0..4 {
            let s = generate(&wcfg, 11, (step * 4 + i) as u64 % 16);
            let mut d = s.data.clone();
            for ch in d.chunks_mut(L) {
                let mean = ch.iter().sum::<f32>() / L as f32;
                let std = (ch.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / L as f32)
                    .sqrt()
                    + 1e-6;
                ch.iter_mut().for_each(|x| *x = (*x - mean) / std);
            }
            v.extend(d);
        }
        let wave = Tensor::from_f32(&[4, 3, L], v).unwrap();
        store.zero_grad().unwrap();
        let st = model
            .train_step(
                &wave,
                cfg.tau(step, steps),
                5,
                step as u32,
                &mut store.grads,
            )
            .unwrap();
        opt.step(&mut store, lr).unwrap();
        if step % 10 == 0 {
            println!(
                "step {step}: contrastive {:.3} diversity {:.3} perplexity {:.2} ({} masked)",
                st.contrastive, st.diversity, st.perplexity, st.masked_frames
            );
        }
        if step < 10 {
            first.push(st);
        }
        if step >= steps - 10 {
            last.push(st);
        }
    }
    let avg = |v: &[seisfuse::models::seislm_pretrain::PretrainStats],
               f: fn(&seisfuse::models::seislm_pretrain::PretrainStats) -> f32| {
        v.iter().map(f).sum::<f32>() / v.len() as f32
    };
    let (c0, c1) = (
        avg(&first, |s| s.contrastive),
        avg(&last, |s| s.contrastive),
    );
    let (d0, d1) = (avg(&first, |s| s.diversity), avg(&last, |s| s.diversity));
    let p1 = avg(&last, |s| s.perplexity);
    println!("contrastive {c0:.3} → {c1:.3}, diversity {d0:.3} → {d1:.3}, perplexity {p1:.2}");
    // ln(1 + negatives) is the loss of a model that cannot tell the target from the negatives
    let chance = (1.0 + cfg.negatives as f32).ln();
    assert!(
        c1 < c0 && c1 < chance - 0.1,
        "the contrastive loss falls below chance ({chance:.3}): {c0} → {c1}"
    );
    assert!(d1 < d0, "the diversity loss falls: {d0} → {d1}");
    assert!(
        p1 > 2.0,
        "the codebook stays in use (perplexity {p1} of at most 32)"
    );
}
