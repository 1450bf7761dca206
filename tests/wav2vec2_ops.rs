//! The wav2vec2 objective as tensor ops (ops::wav2vec2): finite-difference checks of the CPU
//! ops, their agreement with the host functions of `wav2vec2_objective`, bad input, and
//! CPU-vs-CUDA parity of every op and of a whole seislm-tiny pretraining step (skipped, with a
//! printed line, without a GPU).

mod common;
use common::*;
use seisfuse::models::seislm_pretrain::{PretrainConfig, SeislmPretrain};
use seisfuse::models::wav2vec2_objective as obj;
use seisfuse::ops::{self, ContrastiveTargets};
use seisfuse::{DType, Device, Tensor};

fn t(shape: &[usize], v: Vec<f32>) -> Tensor {
    Tensor::from_f32(shape, v).unwrap()
}

/// Candidates over `rows` rows: frame m's positive is row 2m+1, its negatives other rows;
/// q row `twin` is made a copy of frame 0's positive and named among frame 0's negatives.
fn targets_fixture(rows: usize, m: usize, k: usize) -> (Vec<usize>, Vec<Vec<usize>>) {
    let pos: Vec<usize> = (0..m).map(|i| (2 * i + 1) % rows).collect();
    let u = rand_vec(m * k, 99, 0.0, 1.0);
    let negs = (0..m)
        .map(|i| {
            (0..k)
                .map(|j| {
                    let mut r = (u[i * k + j] * (rows - 1) as f32) as usize;
                    if r >= pos[i] {
                        r += 1;
                    }
                    r.min(rows - 1)
                })
                .collect()
        })
        .collect();
    (pos, negs)
}

#[test]
fn contrastive_op_gradients_match_differences() {
    let (rows, f, m, k) = (9, 6, 4, 5);
    let c = rand_vec(rows * f, 1, -1.0, 1.0);
    let q = rand_vec(rows * f, 2, -1.0, 1.0);
    let (pos, negs) = targets_fixture(rows, m, k);
    let tg = ContrastiveTargets::new(&pos, &negs, rows, &Device::Cpu).unwrap();
    let loss = |cv: &[f32], qv: &[f32], tg: &ContrastiveTargets| {
        ops::contrastive_loss(
            &t(&[rows, f], cv.to_vec()),
            &t(&[rows, f], qv.to_vec()),
            tg,
            0.3,
            1.0,
        )
        .unwrap()
    };
    let (l, dc, dq) = loss(&c, &q, &tg);
    // the op is the host function
    let (mut hc, mut hq) = (vec![0.0; c.len()], vec![0.0; q.len()]);
    let hl = obj::contrastive(&c, &q, f, &pos, &negs, 0.3, 1.0, &mut hc, &mut hq);
    assert_eq!(l, hl);
    assert_eq!(dc.to_vec_f32().unwrap(), hc);
    assert_eq!(dq.to_vec_f32().unwrap(), hq);
    check_grad("contrastive op dc", &c, &[1.0], &hc, 1e-3, 5e-3, |x| {
        vec![loss(x, &q, &tg).0]
    });
    check_grad("contrastive op dq", &q, &[1.0], &hq, 1e-3, 5e-3, |x| {
        vec![loss(&c, x, &tg).0]
    });
    // a negative equal to the positive is excluded (−∞ logit) exactly as the host function does
    let (p0, spare) = (pos[0], 0);
    assert!(!pos.contains(&spare));
    let mut q2 = q.clone();
    q2.copy_within(p0 * f..(p0 + 1) * f, spare * f);
    let mut negs2 = negs.clone();
    negs2[0].push(spare);
    for n in negs2.iter_mut().skip(1) {
        n.push(n[0]);
    }
    let tg2 = ContrastiveTargets::new(&pos, &negs2, rows, &Device::Cpu).unwrap();
    let (l2, _, dq2) = loss(&c, &q2, &tg2);
    let dq2 = dq2.to_vec_f32().unwrap();
    let (mut hc2, mut hq2) = (vec![0.0; c.len()], vec![0.0; q.len()]);
    let hl2 = obj::contrastive(&c, &q2, f, &pos, &negs2, 0.3, 1.0, &mut hc2, &mut hq2);
    assert!(l2.is_finite());
    assert_eq!((l2, dq2), (hl2, hq2));
}

#[test]
fn perplexity_op_gradient_matches_differences() {
    let (rows, g, v) = (7, 2, 5);
    let logits = rand_vec(rows * g * v, 4, -2.0, 2.0);
    let w = vec![1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
    let wt = t(&[rows], w.clone());
    let (p, d) = ops::codebook_perplexity(&t(&[rows, g * v], logits.clone()), g, &wt, 1.0).unwrap();
    let mut hd = vec![0.0; logits.len()];
    assert_eq!(p, obj::perplexity(&logits, g, v, &w, Some((1.0, &mut hd))));
    assert_eq!(d.to_vec_f32().unwrap(), hd);
    check_grad("perplexity op", &logits, &[1.0], &hd, 1e-3, 5e-3, |x| {
        vec![
            ops::codebook_perplexity(&t(&[rows, g * v], x.to_vec()), g, &wt, 0.0)
                .unwrap()
                .0,
        ]
    });
}

#[test]
fn gumbel_op_is_the_straight_through_estimator() {
    let (rows, g, v, d, tau) = (4, 2, 6, 3, 0.8);
    let logits = rand_vec(rows * g * v, 5, -1.0, 1.0);
    let code = rand_vec(g * v * d, 6, -1.0, 1.0);
    let dq = rand_vec(rows * g * d, 7, -1.0, 1.0);
    let lt = t(&[2, 2, g * v], logits.clone());
    let ct = t(&[1, g * v, d], code.clone());
    let out = ops::gumbel_quantize(&lt, &ct, g, tau, 9, 3).unwrap();
    assert_eq!(out.q.shape, vec![2, 2, g * d]);
    // forward: the host functions' choice and gather
    let ch = obj::gumbel_choice(&logits, g, v, tau, 9, 3);
    let hard: Vec<i32> = ch.hard.iter().map(|&h| h as i32).collect();
    assert_eq!(out.hard().to_vec_i32().unwrap(), hard);
    assert_eq!(out.soft().to_vec_f32().unwrap(), ch.soft);
    assert_eq!(
        out.q.to_vec_f32().unwrap(),
        obj::gather_codevectors(&ch, &code, d)
    );
    // backward: dcode accumulates onto what is there; dlogits is the soft path's gradient
    let base = rand_vec(code.len(), 8, -1.0, 1.0);
    let mut dcode = t(&[1, g * v, d], base.clone());
    let dl =
        ops::gumbel_quantize_backward(&out, &ct, &t(&out.q.shape, dq.clone()), &mut dcode).unwrap();
    let (mut hc, mut hl) = (vec![0.0; code.len()], vec![0.0; logits.len()]);
    obj::codevector_backward(&ch, &code, d, &dq, &mut hc, &mut hl);
    let want: Vec<f32> = base.iter().zip(&hc).map(|(a, b)| a + b).collect();
    assert_eq!(dcode.to_vec_f32().unwrap(), want);
    assert_eq!(dl.to_vec_f32().unwrap(), hl);
    let soft_q = |x: &[f32]| -> Vec<f32> {
        let o = ops::gumbel_quantize(&t(&[2, 2, g * v], x.to_vec()), &ct, g, tau, 9, 3).unwrap();
        let s = o.soft().to_vec_f32().unwrap();
        let mut y = vec![0.0; rows * g * d];
        for r in 0..rows * g {
            for u in 0..v {
                for k in 0..d {
                    y[r * d + k] += s[r * v + u] * code[((r % g) * v + u) * d + k];
                }
            }
        }
        y
    };
    check_grad(
        "gumbel op straight-through",
        &logits,
        &dq,
        &hl,
        1e-3,
        5e-3,
        soft_q,
    );
}

#[test]
fn bad_input_is_an_error() {
    let dev = Device::Cpu;
    assert!(
        ContrastiveTargets::new(&[], &[], 4, &dev).is_err(),
        "no frames"
    );
    assert!(
        ContrastiveTargets::new(&[0], &[vec![9]], 4, &dev).is_err(),
        "row out of range"
    );
    assert!(
        ContrastiveTargets::new(&[0, 0], &[vec![1], vec![2]], 4, &dev).is_err(),
        "a positive twice"
    );
    assert!(
        ContrastiveTargets::new(&[0, 1], &[vec![1], vec![2, 3]], 4, &dev).is_err(),
        "ragged negatives"
    );
    let tg = ContrastiveTargets::new(&[0, 1], &[vec![1, 2], vec![0, 3]], 4, &dev).unwrap();
    let x = rand_tensor(&[4, 5], 1);
    assert!(ops::contrastive_loss(&x, &rand_tensor(&[4, 6], 2), &tg, 0.1, 1.0).is_err());
    assert!(ops::contrastive_loss(
        &rand_tensor(&[3, 5], 1),
        &rand_tensor(&[3, 5], 2),
        &tg,
        0.1,
        1.0
    )
    .is_err());
    assert!(
        ops::contrastive_loss(&x, &x, &tg, 0.0, 1.0).is_err(),
        "κ = 0"
    );
    assert!(ops::contrastive_loss(&to_bf16(&x), &to_bf16(&x), &tg, 0.1, 1.0).is_err());
    let logits = rand_tensor(&[3, 12], 3);
    let code = rand_tensor(&[12, 4], 4);
    assert!(
        ops::gumbel_quantize(&logits, &code, 5, 1.0, 0, 0).is_err(),
        "12 logits in 5 groups"
    );
    assert!(ops::gumbel_quantize(&logits, &rand_tensor(&[11, 4], 4), 2, 1.0, 0, 0).is_err());
    assert!(
        ops::gumbel_quantize(&logits, &code, 2, 0.0, 0, 0).is_err(),
        "τ = 0"
    );
    assert!(ops::gumbel_quantize(&rand_tensor(&[12], 3), &code, 2, 1.0, 0, 0).is_err());
    let out = ops::gumbel_quantize(&logits, &code, 2, 1.0, 0, 0).unwrap();
    let mut dcode = Tensor::zeros(&[12, 4], DType::F32, &dev).unwrap();
    assert!(
        ops::gumbel_quantize_backward(&out, &code, &rand_tensor(&[3, 7], 5), &mut dcode).is_err()
    );
    assert!(ops::codebook_perplexity(&logits, 2, &rand_tensor(&[4], 1), 1.0).is_err());
}

// ---- CPU vs CUDA ----

fn f32_only(_: DType) -> f64 {
    1e-4
}

#[test]
fn gumbel_parity() {
    for &(rows, g, v, d) in &[(37usize, 2usize, 41usize, 9usize), (300, 2, 320, 128)] {
        parity_with(
            &format!("gumbel quantize rows{rows} G{g} V{v} d{d}"),
            &[DType::F32],
            f32_only,
            |dv, _| {
                let logits = input(&[rows, g * v], 1, dv, DType::F32);
                let code = input(&[1, g * v, d], 2, dv, DType::F32);
                let out = ops::gumbel_quantize(&logits, &code, g, 0.9, 11, 2).unwrap();
                let dq = input(&out.q.shape, 3, dv, DType::F32);
                let mut dcode = input(&code.shape, 4, dv, DType::F32);
                let dl = ops::gumbel_quantize_backward(&out, &code, &dq, &mut dcode).unwrap();
                let h: Vec<f32> = out
                    .hard()
                    .to_vec_i32()
                    .unwrap()
                    .iter()
                    .map(|&x| x as f32)
                    .collect();
                let hard = Tensor::from_f32(&[h.len()], h)
                    .unwrap()
                    .to_device(dv)
                    .unwrap();
                vec![
                    out.q.try_clone().unwrap(),
                    hard,
                    out.soft().try_clone().unwrap(),
                    dl,
                    dcode,
                ]
            },
        );
    }
}

#[test]
fn perplexity_parity() {
    for &(rows, g, v) in &[(53usize, 2usize, 37usize), (1500, 2, 320)] {
        parity_with(
            &format!("codebook perplexity rows{rows} G{g} V{v}"),
            &[DType::F32],
            f32_only,
            |dv, _| {
                let logits = input(&[rows, g * v], 1, dv, DType::F32);
                let w: Vec<f32> = (0..rows)
                    .map(|r| if r % 3 == 1 { 0.0 } else { 1.0 })
                    .collect();
                let w = Tensor::from_f32(&[rows], w).unwrap().to_device(dv).unwrap();
                let (p, dl) = ops::codebook_perplexity(&logits, g, &w, -0.3).unwrap();
                vec![
                    Tensor::from_f32(&[1], vec![p])
                        .unwrap()
                        .to_device(dv)
                        .unwrap(),
                    dl,
                ]
            },
        );
    }
}

#[test]
fn contrastive_parity() {
    for &(rows, f, m, k) in &[(40usize, 37usize, 17usize, 9usize), (600, 256, 250, 100)] {
        parity_with(
            &format!("contrastive loss rows{rows} f{f} M{m} K{k}"),
            &[DType::F32],
            f32_only,
            |dv, _| {
                let c = input(&[rows, f], 1, dv, DType::F32);
                let mut qv = rand_vec(rows * f, 2, -1.0, 1.0);
                let (pos, mut negs) = targets_fixture(rows, m, k);
                let twin: Vec<f32> = qv[pos[0] * f..(pos[0] + 1) * f].to_vec();
                qv[..f].copy_from_slice(&twin);
                negs[0][0] = 0;
                let q = Tensor::from_f32(&[rows, f], qv)
                    .unwrap()
                    .to_device(dv)
                    .unwrap();
                let tg = ContrastiveTargets::new(&pos, &negs, rows, dv).unwrap();
                let (l, dc, dq) = ops::contrastive_loss(&c, &q, &tg, 0.1, 1.0 / m as f32).unwrap();
                vec![
                    Tensor::from_f32(&[1], vec![l])
                        .unwrap()
                        .to_device(dv)
                        .unwrap(),
                    dc,
                    dq,
                ]
            },
        );
    }
}

#[test]
fn pretraining_step_parity() {
    let Some(gpu) = cuda_or_skip("seislm-tiny pretraining step parity") else {
        return;
    };
    let cfg = PretrainConfig::preset("seislm-tiny").unwrap();
    let wave = rand_tensor(&[2, 3, 601], 21);
    let run = |dv: &Device| {
        let mut model = SeislmPretrain::new(cfg.clone(), 3).unwrap();
        let mut store = pack(&mut model, dv);
        let st = model
            .train_step(&wave.to_device(dv).unwrap(), 1.5, 5, 2, &mut store.grads)
            .unwrap();
        (st, grads_of(&store))
    };
    let (want, wg) = run(&Device::Cpu);
    let (got, gg) = run(&gpu);
    println!("cpu {want:?}\ngpu {got:?}");
    assert_eq!(want.masked_frames, got.masked_frames);
    for (a, b, what) in [
        (got.contrastive, want.contrastive, "contrastive"),
        (got.perplexity, want.perplexity, "perplexity"),
        (got.loss, want.loss, "loss"),
    ] {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1.0),
            "{what}: gpu {a} vs cpu {b}"
        );
    }
    for ((n, w), (_, g)) in wg.iter().zip(&gg) {
        let e = rel_err(g, w);
        assert!(e < 1e-3, "gradient of {n}: relative error {e:.2e}");
    }
}

#[test]
fn pretraining_step_in_bf16_follows_fp32() {
    // bf16 activations (compute copies of the weights), the objective itself in fp32
    let cfg = PretrainConfig::preset("seislm-tiny").unwrap();
    let wave = rand_tensor(&[2, 3, 601], 21);
    let run = |bf16: bool| {
        let mut model = SeislmPretrain::new(cfg.clone(), 3).unwrap();
        let mut store = pack(&mut model, &Device::Cpu);
        let w = if bf16 {
            store.set_compute_dtype(&mut model, DType::BF16).unwrap();
            to_bf16(&wave)
        } else {
            wave.try_clone().unwrap()
        };
        let st = model.train_step(&w, 1.5, 5, 2, &mut store.grads).unwrap();
        let g: Vec<f32> = grads_of(&store).into_values().flatten().collect();
        (st, g)
    };
    let (want, wg) = run(false);
    let (got, gg) = run(true);
    println!("fp32 {want:?}\nbf16 {got:?}");
    assert!(gg.iter().all(|v| v.is_finite()));
    assert!((got.contrastive - want.contrastive).abs() < 0.05 * want.contrastive);
    assert!((got.perplexity - want.perplexity).abs() < 0.05 * want.perplexity);
    let e = rel_err(&gg, &wg);
    println!("bf16 gradient relative error {e:.2e}");
    assert!(e < 5e-2, "bf16 gradients off by {e}");
}
