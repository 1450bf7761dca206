//! Finite-difference checks of the log-mel backward pass (gradient with respect to the
//! waveform), in f64, and agreement of the f32 backward with the f64 one.

use seisfuse::dsp::*;

/// Deterministic values in [-1, 1) (a small LCG; tests need no RNG crate).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn check(stft: StftConfig, scale: MelScale, norm: MelNorm, log: LogKind, t: usize) {
    let mel = MelParams {
        sample_rate: 100.0,
        n_fft: stft.n_fft,
        n_mels: 10,
        f_min: 1.0,
        f_max: Some(45.0),
        scale,
        norm,
    };
    let lm = LogMel::<f64>::new(&stft, &mel, log).unwrap();
    let x = values(t, 1);
    let out = lm.forward(&x).unwrap();
    let dy = values(out.len(), 2);
    let dx = lm.backward(&x, &dy).unwrap();
    let loss = |x: &[f64]| dot(&lm.forward(x).unwrap(), &dy);
    let eps = 1e-6;
    // Single samples, the edges (reflected) included, and random directions.
    let mut dirs: Vec<Vec<f64>> = [0, 1, 2, t / 2, t - 2, t - 1]
        .iter()
        .map(|&j| {
            let mut v = vec![0.0; t];
            v[j] = 1.0;
            v
        })
        .collect();
    dirs.push(values(t, 3));
    dirs.push(values(t, 4));
    for v in &dirs {
        let xp: Vec<f64> = x.iter().zip(v).map(|(a, b)| a + eps * b).collect();
        let xm: Vec<f64> = x.iter().zip(v).map(|(a, b)| a - eps * b).collect();
        let fd = (loss(&xp) - loss(&xm)) / (2.0 * eps);
        let an = dot(&dx, v);
        let scale = fd.abs().max(an.abs()).max(1e-3);
        assert!(
            (fd - an).abs() <= 1e-6 * scale,
            "{stft:?} {log:?}: finite difference {fd} vs backward {an}"
        );
    }
    // The f32 backward (what users run) agrees with the f64 one.
    let lm32 = LogMel::<f32>::new(&stft, &mel, log).unwrap();
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let dy32: Vec<f32> = dy.iter().map(|&v| v as f32).collect();
    let dx32 = lm32.backward(&x32, &dy32).unwrap();
    let num: f64 = dx32
        .iter()
        .zip(&dx)
        .map(|(a, b)| (*a as f64 - b).powi(2))
        .sum();
    let rel = (num / dot(&dx, &dx)).sqrt();
    assert!(rel < 1e-4, "f32 backward differs from f64 by {rel:.2e}");
}

#[test]
fn log_mel_backward_matches_finite_differences() {
    check(
        StftConfig::new(32, 8),
        MelScale::Htk,
        MelNorm::None,
        LogKind::Ln { floor: 1e-12 },
        101,
    );
    let mut c = StftConfig::new(30, 7);
    c.pad_mode = PadMode::Constant;
    c.win_length = Some(24);
    check(
        c,
        MelScale::Slaney,
        MelNorm::Slaney,
        LogKind::Db {
            amin: 1e-12,
            ref_value: 1.0,
        },
        95,
    );
    let mut c = StftConfig::new(28, 9);
    c.center = false;
    c.window = WindowKind::Hamming;
    check(c, MelScale::Htk, MelNorm::Slaney, LogKind::Linear, 97);
}
