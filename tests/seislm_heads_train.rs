//! The SeisLM heads learn on synthetic waveforms (data::synth, 3×1001 samples at 100 Hz) with a
//! frozen seislm-tiny encoder whose hidden states are computed once. Every score is taken on
//! held-out traces (generator indices never trained on) against a baseline with a stated margin:
//! the P and S picks beat the constant pick at the training set's median onset; the event head
//! beats the majority class in separating event traces from noise traces, and foreshocks from
//! aftershocks of a synthetic sequence.

use seisfuse::data::synth::waveforms::{generate, WaveformConfig, WaveformSample};
use seisfuse::data::transforms::zscore_in_place;
use seisfuse::metrics::picking::onset_sample;
use seisfuse::metrics::{accuracy, onset_stats, onset_stats_from_probs};
use seisfuse::models::seislm::{Seislm, SeislmConfig};
use seisfuse::models::seislm_heads::{
    class_loss, pick_loss, pick_targets, EventHead, HeadConfig, PhasePickHead,
};
use seisfuse::ops::{self, AdamWConfig};
use seisfuse::train::optimizer::AdamW;
use seisfuse::Tensor;

const SAMPLES: usize = 1001;

fn adamw(lr: f32) -> AdamW {
    AdamW::new(AdamWConfig {
        lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    })
}

/// Traces normalised as SeisLM ([n, 3, SAMPLES]) and the tiny encoder's hidden states.
fn encode(traces: &[WaveformSample]) -> (Tensor, Tensor) {
    let mut data: Vec<f32> = traces.iter().flat_map(|t| t.data.clone()).collect();
    for ch in data.chunks_mut(SAMPLES) {
        zscore_in_place(ch, 1e-6);
    }
    let wave = Tensor::from_f32(&[traces.len(), 3, SAMPLES], data).unwrap();
    let enc = Seislm::new(SeislmConfig::preset("seislm-tiny").unwrap(), 3).unwrap();
    let (out, _) = enc.forward(&wave, None).unwrap();
    (wave, out.last_hidden_state)
}

/// Rows `r` (along the first axis) of `t`.
fn rows(t: &Tensor, r: std::ops::Range<usize>) -> Tensor {
    let h = t.shape[1..].iter().product::<usize>();
    let v = t.to_vec_f32().unwrap();
    let mut shape = t.shape.clone();
    shape[0] = r.len();
    Tensor::from_f32(&shape, v[r.start * h..r.end * h].to_vec()).unwrap()
}

/// Fraction of traces whose argmax of `class` lies within `tol` samples of the true onset, and
/// the same for the constant prediction `constant` (the median onset of the training traces).
fn pick_accuracy(
    probs: &[f32],
    truth: &[Option<usize>],
    class: usize,
    tol: usize,
    constant: usize,
) -> (f64, f64) {
    let with: Vec<(usize, usize)> = truth
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.map(|t| (i, t)))
        .collect();
    let median = constant;
    let (mut hit, mut hit_const) = (0, 0);
    for &(i, t) in &with {
        let row: Vec<f32> = probs[i * SAMPLES * 3..(i + 1) * SAMPLES * 3]
            .iter()
            .skip(class)
            .step_by(3)
            .copied()
            .collect();
        let p = onset_sample(&row).unwrap();
        hit += (p.abs_diff(t) <= tol) as usize;
        hit_const += (median.abs_diff(t) <= tol) as usize;
    }
    let n = with.len() as f64;
    (hit as f64 / n, hit_const as f64 / n)
}

#[test]
fn picking_head_learns_p_and_s_onsets() {
    let cfg = WaveformConfig {
        event_probability: 1.0,
        distance_km: (5.0, 40.0),
        ..WaveformConfig::new(SAMPLES)
    };
    // Train on generator indices 0..TRAIN, score on 1000..1016.
    const TRAIN: usize = 32;
    let all: Vec<WaveformSample> = (0..TRAIN as u64)
        .chain(1000..1016)
        .map(|i| generate(&cfg, 7, i))
        .collect();
    let (wave_all, hidden_all) = encode(&all);
    let (traces, held) = all.split_at(TRAIN);
    let (wave, hidden) = (rows(&wave_all, 0..TRAIN), rows(&hidden_all, 0..TRAIN));
    let (wave_held, hidden_held) = (
        rows(&wave_all, TRAIN..TRAIN + 16),
        rows(&hidden_all, TRAIN..TRAIN + 16),
    );
    let b = traces.len();
    let median_train = |f: fn(&WaveformSample) -> Option<usize>| {
        let mut o: Vec<usize> = traces.iter().filter_map(f).collect();
        o.sort();
        o[o.len() / 2]
    };
    let (p_median, s_median) = (median_train(|t| t.p_sample), median_train(|t| t.s_sample));
    let targets: Vec<f32> = traces
        .iter()
        .flat_map(|t| {
            pick_targets(
                SAMPLES,
                t.p_sample.map(|s| s as f32),
                t.s_sample.map(|s| s as f32),
                20.0,
            )
        })
        .collect();
    let targets = Tensor::from_f32(&[b, SAMPLES, 3], targets).unwrap();
    let mut head = PhasePickHead::new(HeadConfig::picking(48, 16), 1).unwrap();
    let mut store = seisfuse::nn::ParamStore::pack(&mut head, &seisfuse::Device::Cpu).unwrap();
    let eval_loss = |head: &mut PhasePickHead| {
        head.set_training(false);
        let (logits, _) = head.forward(&hidden, &wave).unwrap();
        head.set_training(true);
        (pick_loss(&logits, &targets).unwrap().0.loss, logits)
    };
    let (first, _) = eval_loss(&mut head);
    let mut opt = adamw(1e-2);
    for step in 0..60 {
        head.step = step;
        let (logits, cache) = head.forward(&hidden, &wave).unwrap();
        let (l, dl) = pick_loss(&logits, &targets).unwrap();
        assert!(l.loss.is_finite(), "step {step}: loss {}", l.loss);
        store.zero_grad().unwrap();
        head.backward(&cache, &dl, &mut store.grads).unwrap();
        opt.step(&mut store, 1e-2).unwrap();
    }
    let (last, _) = eval_loss(&mut head);
    head.set_training(false);
    let (logits, _) = head.forward(&hidden_held, &wave_held).unwrap();
    let probs = ops::softmax(&logits).unwrap().to_vec_f32().unwrap();
    let p_truth: Vec<Option<usize>> = held.iter().map(|t| t.p_sample).collect();
    let s_truth: Vec<Option<usize>> = held.iter().map(|t| t.s_sample).collect();
    let (p_acc, p_const) = pick_accuracy(&probs, &p_truth, 0, 50, p_median);
    let (s_acc, s_const) = pick_accuracy(&probs, &s_truth, 1, 50, s_median);
    println!(
        "picking loss {first:.4} → {last:.4}; held out, P within 0.5 s: {p_acc:.2} (constant {p_const:.2}); S: {s_acc:.2} (constant {s_const:.2})"
    );
    // SeisBench task 3 on the held-out windows: P onset residuals against those of the
    // constant predictor at the training median.
    let rows: Vec<Vec<f32>> = (0..held.len())
        .map(|i| {
            probs[i * SAMPLES * 3..(i + 1) * SAMPLES * 3]
                .iter()
                .step_by(3)
                .copied()
                .collect()
        })
        .collect();
    let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
    let truth: Vec<f64> = p_truth.iter().map(|t| t.unwrap() as f64).collect();
    let stats = onset_stats_from_probs(&refs, &truth, 100.0).unwrap();
    let constant = onset_stats(&vec![p_median as f64; held.len()], &truth, 100.0).unwrap();
    println!(
        "P onsets: RMSE {:.3} s, MAE {:.3} s (constant: RMSE {:.3} s, MAE {:.3} s)",
        stats.rmse, stats.mae, constant.rmse, constant.mae
    );
    // Measured (CPU, held out): P within 0.5 s 0.81 vs 0.25 for the constant, S 0.69 vs 0.19,
    // P MAE 0.50 s vs 1.32 s (0.38 ×). Trained on 16 traces for 40 steps the held-out MAE was
    // worse than the constant's: hence 32 traces and 60 steps.
    assert!(
        stats.mae < 0.5 * constant.mae,
        "held-out P MAE {:.3} s vs constant {:.3} s",
        stats.mae,
        constant.mae
    );
    assert!(last < 0.5 * first, "loss {first} → {last}");
    assert!(
        p_acc >= p_const + 0.25,
        "held-out P accuracy {p_acc} vs constant {p_const}"
    );
    assert!(
        s_acc >= s_const + 0.25,
        "held-out S accuracy {s_acc} vs constant {s_const}"
    );
}

#[test]
fn event_head_separates_events_from_noise() {
    let cfg = WaveformConfig {
        event_probability: 0.5,
        ..WaveformConfig::new(SAMPLES)
    };
    // Train on generator indices 0..64, score on 64..96.
    let traces: Vec<WaveformSample> = (0..96).map(|i| generate(&cfg, 11, i)).collect();
    let all_labels: Vec<i32> = traces.iter().map(|t| t.is_event as i32).collect();
    let (labels, test) = all_labels.split_at(64);
    let events = labels.iter().filter(|&&l| l == 1).count();
    assert!((16..=48).contains(&events), "{events} events of 64");
    let test_events = test.iter().filter(|&&l| l == 1).count();
    // the majority class of the held-out split (at least what predicting the training
    // majority scores there)
    let chance = test_events.max(32 - test_events) as f64 / 32.0;
    let (_, hidden_all) = encode(&traces);
    let (hidden, htest) = (rows(&hidden_all, 0..64), rows(&hidden_all, 64..96));
    let cfg = HeadConfig {
        hidden: 48,
        in_chans: 3,
        channels: 16,
        classes: 2,
        dropout: 0.2,
    };
    let mut head = EventHead::new(cfg, 2).unwrap();
    let mut store = seisfuse::nn::ParamStore::pack(&mut head, &seisfuse::Device::Cpu).unwrap();
    let mut opt = adamw(1e-2);
    let mut first = None;
    for step in 0..40 {
        head.step = step;
        let (logits, cache) = head.forward(&hidden).unwrap();
        let (l, dl) = class_loss(&logits, labels).unwrap();
        first.get_or_insert(l.loss);
        store.zero_grad().unwrap();
        head.backward(&cache, &dl, &mut store.grads).unwrap();
        opt.step(&mut store, 1e-2).unwrap();
    }
    head.set_training(false);
    let (logits, _) = head.forward(&hidden).unwrap();
    let (l, _) = class_loss(&logits, labels).unwrap();
    let (logits, _) = head.forward(&htest).unwrap();
    let pred: Vec<i32> = logits
        .to_vec_f32()
        .unwrap()
        .chunks(2)
        .map(|c| (c[1] > c[0]) as i32)
        .collect();
    let acc = accuracy(&pred, test).unwrap();
    println!(
        "event loss {:.4} → {:.4}; held-out accuracy {acc:.3} (majority class {chance:.3})",
        first.unwrap(),
        l.loss
    );
    // Measured (CPU): 0.750 held out against a majority class of 0.500. Trained on 32 traces
    // it was 0.72 against 0.66.
    assert!(
        acc >= chance + 0.15,
        "held-out accuracy {acc} vs majority class {chance}"
    );
}

/// SeisLM's event classification task on a synthetic sequence: foreshocks vs aftershocks, whose
/// sources (distance, azimuth, mechanism, corner frequency) differ between the two periods.
/// Trained on 32 events, scored on 32 others.
#[test]
fn event_head_separates_foreshocks_from_aftershocks() {
    let cfg = WaveformConfig {
        event_probability: 1.0,
        sequence_classes: 2,
        ..WaveformConfig::new(SAMPLES)
    };
    let traces: Vec<WaveformSample> = (0..64).map(|i| generate(&cfg, 21, i)).collect();
    let labels: Vec<i32> = traces
        .iter()
        .map(|t| t.sequence_class.expect("every trace is an event") as i32)
        .collect();
    let (train, test) = labels.split_at(32);
    let (_, hidden) = encode(&traces);
    let h = hidden.shape[1..].iter().product::<usize>();
    let v = hidden.to_vec_f32().unwrap();
    let part = |r: std::ops::Range<usize>| {
        let mut shape = hidden.shape.clone();
        shape[0] = r.len();
        Tensor::from_f32(&shape, v[r.start * h..r.end * h].to_vec()).unwrap()
    };
    let (htrain, htest) = (part(0..32), part(32..64));
    let head_cfg = HeadConfig {
        hidden: 48,
        in_chans: 3,
        channels: 16,
        classes: 2,
        dropout: 0.2,
    };
    let mut head = EventHead::new(head_cfg, 4).unwrap();
    let mut store = seisfuse::nn::ParamStore::pack(&mut head, &seisfuse::Device::Cpu).unwrap();
    let mut opt = adamw(1e-2);
    let mut first = None;
    for step in 0..60 {
        head.step = step;
        let (logits, cache) = head.forward(&htrain).unwrap();
        let (l, dl) = class_loss(&logits, train).unwrap();
        first.get_or_insert(l.loss);
        store.zero_grad().unwrap();
        head.backward(&cache, &dl, &mut store.grads).unwrap();
        opt.step(&mut store, 1e-2).unwrap();
    }
    head.set_training(false);
    let predict = |head: &mut EventHead, x: &Tensor| -> Vec<i32> {
        let (logits, _) = head.forward(x).unwrap();
        logits
            .to_vec_f32()
            .unwrap()
            .chunks(2)
            .map(|c| (c[1] > c[0]) as i32)
            .collect()
    };
    let train_acc = accuracy(&predict(&mut head, &htrain), train).unwrap();
    let test_acc = accuracy(&predict(&mut head, &htest), test).unwrap();
    let ones = test.iter().filter(|&&l| l == 1).count();
    let chance = ones.max(32 - ones) as f64 / 32.0;
    println!(
        "foreshock/aftershock: first loss {:.4}; train accuracy {train_acc:.3}, test accuracy {test_acc:.3} (majority class {chance:.3})",
        first.unwrap()
    );
    assert!(train_acc > 0.9, "train accuracy {train_acc}");
    assert!(
        test_acc > chance + 0.1,
        "test accuracy {test_acc} vs chance {chance}"
    );
}
