//! The wav2vec2 objective as tensor ops (ops::wav2vec2): the CPU ops' values against their
//! definitions written out here in f64 (not against `wav2vec2_objective`, which the CPU ops
//! call), their gradients against finite differences, bad input, and
//! CPU-vs-CUDA parity of every op and of a whole seislm-tiny pretraining step (ignored: they
//! need a GPU, and fail without CUDA when run).

mod common;
use common::*;
use seisfuse::models::seislm_pretrain::{PretrainConfig, SeislmPretrain};
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

/// The contrastive loss by its definition, in f64, written out here (independent of
/// `wav2vec2_objective`, which the CPU op calls): Σ_m −log softmax(cos(c_p, q_j)/κ)_0 over
/// candidates j = [p, negatives of m…], a negative whose q equals q_p left out.
fn contrastive_by_definition(
    c: &[f32],
    q: &[f32],
    f: usize,
    pos: &[usize],
    negs: &[Vec<usize>],
    kappa: f64,
) -> f64 {
    let row = |v: &[f32], r: usize| {
        v[r * f..(r + 1) * f]
            .iter()
            .map(|&x| x as f64)
            .collect::<Vec<f64>>()
    };
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let mut total = 0.0;
    for (m, &p) in pos.iter().enumerate() {
        let cp = row(c, p);
        let qp = &q[p * f..(p + 1) * f];
        let mut logits = Vec::new();
        for (k, &j) in std::iter::once(&p).chain(&negs[m]).enumerate() {
            if k > 0 && &q[j * f..(j + 1) * f] == qp {
                continue;
            }
            let qj = row(q, j);
            let dot: f64 = cp.iter().zip(&qj).map(|(a, b)| a * b).sum();
            logits.push(dot / (norm(&cp) * norm(&qj)).max(1e-8) / kappa);
        }
        let mx = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = mx + logits.iter().map(|l| (l - mx).exp()).sum::<f64>().ln();
        total += lse - logits[0];
    }
    total
}

/// Codebook perplexity by its definition, in f64: Σ_g exp(H(p̄_g)), p̄_g the weighted mean of
/// the rows' softmax over group g's entries, H with the 1e-7 guard of HF.
fn perplexity_by_definition(logits: &[f32], g: usize, v: usize, w: &[f32]) -> f64 {
    let rows = logits.len() / (g * v);
    let wsum: f64 = w.iter().map(|&x| x as f64).sum();
    let mut ppl = 0.0;
    for gi in 0..g {
        let mut marg = vec![0.0f64; v];
        for r in 0..rows {
            let l = &logits[(r * g + gi) * v..(r * g + gi + 1) * v];
            let mx = l.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let z: f64 = l.iter().map(|&x| (x as f64 - mx).exp()).sum();
            for u in 0..v {
                marg[u] += w[r] as f64 * (l[u] as f64 - mx).exp() / z / wsum;
            }
        }
        ppl += (-marg.iter().map(|&p| p * (p + 1e-7).ln()).sum::<f64>()).exp();
    }
    ppl
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
    // the value against the definition; the gradients against differences of the op
    let want = contrastive_by_definition(&c, &q, f, &pos, &negs, 0.3);
    assert!(
        (l as f64 - want).abs() < 1e-5 * want.abs().max(1.0),
        "contrastive loss {l} vs {want} by definition"
    );
    let (dc, dq) = (dc.to_vec_f32().unwrap(), dq.to_vec_f32().unwrap());
    check_grad("contrastive op dc", &c, &[1.0], &dc, 1e-3, 5e-3, |x| {
        vec![loss(x, &q, &tg).0]
    });
    check_grad("contrastive op dq", &q, &[1.0], &dq, 1e-3, 5e-3, |x| {
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
    let want2 = contrastive_by_definition(&c, &q2, f, &pos, &negs2, 0.3);
    assert!(
        (l2 as f64 - want2).abs() < 1e-5 * want2.abs().max(1.0),
        "with the twin: {l2} vs {want2} by definition"
    );
    // dq against differences on every row but the twin and the positive it copies (moving
    // either breaks the equality, where the loss is not differentiable)
    let scale = dq2.iter().fold(1e-3f32, |m, &g| m.max(g.abs())) as f64;
    let h = 1e-3f32;
    for i in (0..rows * f).filter(|&i| i / f != spare && i / f != p0) {
        let mut x = q2.clone();
        x[i] += h;
        let lp = loss(&c, &x, &tg2).0 as f64;
        x[i] -= 2.0 * h;
        let lm = loss(&c, &x, &tg2).0 as f64;
        let num = (lp - lm) / (2.0 * h as f64);
        let err = (num - dq2[i] as f64).abs() / scale;
        assert!(
            err < 5e-3,
            "with the twin, dq[{i}]: {} vs numeric {num}",
            dq2[i]
        );
    }
}

#[test]
fn perplexity_op_gradient_matches_differences() {
    let (rows, g, v) = (7, 2, 5);
    let logits = rand_vec(rows * g * v, 4, -2.0, 2.0);
    let w = vec![1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
    let wt = t(&[rows], w.clone());
    let (p, d) = ops::codebook_perplexity(&t(&[rows, g * v], logits.clone()), g, &wt, 1.0).unwrap();
    let want = perplexity_by_definition(&logits, g, v, &w);
    assert!(
        (p as f64 - want).abs() < 1e-5 * want,
        "perplexity {p} vs {want} by definition"
    );
    let d = d.to_vec_f32().unwrap();
    check_grad("perplexity op", &logits, &[1.0], &d, 1e-3, 5e-3, |x| {
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
    // forward, from the op's own outputs and the indexing written out here: each soft row is a
    // distribution, the hard choice is its argmax, and q gathers that codevector of the group
    let hard: Vec<usize> = out
        .hard()
        .to_vec_i32()
        .unwrap()
        .iter()
        .map(|&h| h as usize)
        .collect();
    let soft = out.soft().to_vec_f32().unwrap();
    let qv = out.q.to_vec_f32().unwrap();
    for r in 0..rows {
        for gi in 0..g {
            let s = &soft[(r * g + gi) * v..(r * g + gi + 1) * v];
            assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-5 && s.iter().all(|&p| p > 0.0));
            let best = (0..v).max_by(|&a, &b| s[a].total_cmp(&s[b])).unwrap();
            assert_eq!(
                hard[r * g + gi],
                best,
                "row {r} group {gi}: hard is the argmax"
            );
            assert_eq!(
                qv[(r * g + gi) * d..(r * g + gi + 1) * d],
                code[(gi * v + best) * d..(gi * v + best + 1) * d],
                "row {r} group {gi}: q is the chosen codevector"
            );
        }
    }
    // backward: dcode accumulates onto what is there; dlogits is the soft path's gradient
    let base = rand_vec(code.len(), 8, -1.0, 1.0);
    let mut dcode = t(&[1, g * v, d], base.clone());
    let dl =
        ops::gumbel_quantize_backward(&out, &ct, &t(&out.q.shape, dq.clone()), &mut dcode).unwrap();
    // dcode: what was there plus, for each (row, group), dq added to the chosen entry
    let mut want = base.clone();
    for r in 0..rows {
        for gi in 0..g {
            let chosen = hard[r * g + gi];
            for k in 0..d {
                want[(gi * v + chosen) * d + k] += dq[(r * g + gi) * d + k];
            }
        }
    }
    let got = dcode.to_vec_f32().unwrap();
    assert!(
        got.iter()
            .zip(&want)
            .all(|(a, b)| (a - b).abs() <= 1e-6 * b.abs().max(1.0)),
        "dcode {got:?} vs {want:?}"
    );
    let hl = dl.to_vec_f32().unwrap();
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
#[ignore = "needs a CUDA GPU"]
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
#[ignore = "needs a CUDA GPU"]
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
#[ignore = "needs a CUDA GPU"]
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
#[ignore = "needs a CUDA GPU"]
fn pretraining_step_parity() {
    let gpu = cuda("seislm-tiny pretraining step parity");
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
