//! CPU dsp against librosa 0.11 (fixtures from tools/make_mel_fixtures.py), at fp32 tolerance.

mod common;
use common::{assert_close, fixture};
use seisfuse::dsp::*;

const SIGNALS: [&str; 2] = ["chirp", "noise"];

fn sig(name: &str) -> Vec<f32> {
    fixture(&format!("sig_{name}")).1
}

#[test]
fn windows_match_definitions() {
    let w = window(WindowKind::Hann, 4, true);
    let want = [0.0, 0.5, 1.0, 0.5];
    for (a, b) in w.iter().zip(want) {
        assert!((a - b).abs() < 1e-12);
    }
    let s = window(WindowKind::Hann, 5, false);
    assert!((s[0]).abs() < 1e-12 && (s[4]).abs() < 1e-12 && (s[2] - 1.0).abs() < 1e-12);
    let h = window(WindowKind::Hamming, 5, false);
    assert!((h[0] - 0.08).abs() < 1e-12 && (h[2] - 1.0).abs() < 1e-12);
    let p = padded_window(WindowKind::Hann, 3, 8, false).unwrap();
    assert_eq!(p.iter().filter(|v| **v != 0.0).count(), 1);
    assert!((p[3] - 1.0).abs() < 1e-12);
    assert!(padded_window(WindowKind::Hann, 9, 8, true).is_err());
}

#[test]
fn stft_matches_librosa() {
    for s in SIGNALS {
        let x = sig(s);
        // A: magnitude, periodic Hann, centred, reflect.
        let cfg = StftConfig::new(64, 16);
        let (shape, want) = fixture(&format!("stft_a_{s}"));
        assert_eq!(shape, vec![33, cfg.n_frames(x.len()).unwrap()]);
        let got = spectrogram(&x, &cfg, 1.0).unwrap();
        assert_close(&format!("stft_a {s}"), &got, &want, 1e-5, 1e-4);
        // B: power, Hamming 50 in 60, constant padding.
        let mut cfg = StftConfig::new(60, 15);
        cfg.win_length = Some(50);
        cfg.window = WindowKind::Hamming;
        cfg.pad_mode = PadMode::Constant;
        let (shape, want) = fixture(&format!("stft_b_{s}"));
        assert_eq!(shape, vec![31, cfg.n_frames(x.len()).unwrap()]);
        let got = spectrogram(&x, &cfg, 2.0).unwrap();
        assert_close(&format!("stft_b {s}"), &got, &want, 1e-5, 1e-3);
        // C: not centred, symmetric Hann.
        let mut cfg = StftConfig::new(50, 20);
        cfg.center = false;
        cfg.periodic = false;
        let (shape, want) = fixture(&format!("stft_c_{s}"));
        assert_eq!(shape, vec![26, cfg.n_frames(x.len()).unwrap()]);
        let got = spectrogram(&x, &cfg, 1.0).unwrap();
        assert_close(&format!("stft_c {s}"), &got, &want, 1e-5, 1e-4);
    }
}

#[test]
fn filterbanks_match_librosa() {
    for (scale, sn) in [(MelScale::Htk, "htk"), (MelScale::Slaney, "slaney")] {
        for (norm, nn) in [(MelNorm::None, "none"), (MelNorm::Slaney, "slaney")] {
            let fb = MelFilterbank::new(&MelParams {
                sample_rate: 100.0,
                n_fft: 64,
                n_mels: 12,
                f_min: 0.5,
                f_max: Some(45.0),
                scale,
                norm,
            })
            .unwrap();
            let (shape, want) = fixture(&format!("fb_{sn}_{nn}"));
            assert_eq!(shape, vec![12, 33]);
            assert_close(&format!("fb {sn} {nn}"), &fb.weights, &want, 1e-6, 1e-6);
            // The ranges cover every non-zero weight.
            for m in 0..12 {
                let (a, b) = fb.ranges[m];
                for k in 0..33 {
                    if fb.weights[m * 33 + k] != 0.0 {
                        assert!(a <= k && k < b);
                    }
                }
            }
        }
    }
}

fn cfg_a() -> MelConfig {
    MelConfig {
        stft: StftConfig::new(64, 16),
        mel: MelParams {
            sample_rate: 100.0,
            n_fft: 64,
            n_mels: 16,
            f_min: 0.0,
            f_max: None,
            scale: MelScale::Htk,
            norm: MelNorm::None,
        },
        power: 2.0,
    }
}

#[test]
fn mel_spectrograms_match_librosa() {
    for s in SIGNALS {
        let x = sig(s);
        let a = cfg_a();
        let got = mel_spectrogram(&x, &a).unwrap();
        let (shape, want) = fixture(&format!("spec_a_{s}"));
        assert_eq!(shape, vec![16, a.stft.n_frames(x.len()).unwrap()]);
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
        assert_close(&format!("spec_a {s}"), &got, &want, 1e-5, 1e-5 * scale);
        let mut db = got.clone();
        power_to_db(&mut db, 1.0, 1e-10, Some(80.0));
        let (_, want_db) = fixture(&format!("db_a_{s}"));
        // dB of bins 80 dB below the peak: fp32 rounding of the FFT shows as milli-dB there.
        assert_close(&format!("db_a {s}"), &db, &want_db, 1e-5, 1e-2);
        // The same through LogMel (the GPU kernel's function), dB without top_db.
        let lm = LogMel::<f32>::new(
            &a.stft,
            &a.mel,
            LogKind::Db {
                amin: 1e-10,
                ref_value: 1.0,
            },
        )
        .unwrap();
        let mut db2 = lm.forward(&x).unwrap();
        let mx = db2.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        seisfuse::dsp::mel::clip_top_db(&mut db2, mx, 80.0);
        assert_close(&format!("logmel db_a {s}"), &db2, &want_db, 1e-5, 1e-2);

        let mut stft = StftConfig::new(90, 25);
        stft.pad_mode = PadMode::Constant;
        let b = MelConfig {
            stft,
            mel: MelParams {
                sample_rate: 100.0,
                n_fft: 90,
                n_mels: 20,
                f_min: 2.0,
                f_max: Some(40.0),
                scale: MelScale::Slaney,
                norm: MelNorm::Slaney,
            },
            power: 1.0,
        };
        let got = mel_spectrogram(&x, &b).unwrap();
        let (shape, want) = fixture(&format!("spec_b_{s}"));
        assert_eq!(shape, vec![20, b.stft.n_frames(x.len()).unwrap()]);
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
        assert_close(&format!("spec_b {s}"), &got, &want, 1e-5, 1e-5 * scale);
    }
}

#[test]
fn mel_images_match_the_documented_recipe() {
    let (shape, waves) = fixture("image_waves");
    let (n, c, t) = (shape[0], shape[1], shape[2]);
    let base = MelImageConfig {
        height: 32,
        width: 48,
        ..Default::default()
    };
    let plan = MelImagePlan::new(&base, t).unwrap();
    assert_eq!((plan.n_fft, plan.hop, plan.frames), (64, 31, 49));

    let cfg = base.clone().with_db(Some(80.0));
    let (got, gshape) = mel_images(&waves, n, c, t, &cfg).unwrap();
    let (wshape, want) = fixture("image_db_minmax");
    assert_eq!(gshape.to_vec(), wshape);
    assert_close("image db minmax", &got, &want, 1e-5, 1e-4);

    let cfg = MelImageConfig {
        normalize: Normalize::ZScore,
        average_channels: true,
        ..base
    };
    let (got, gshape) = mel_images(&waves, n, c, t, &cfg).unwrap();
    let (wshape, want) = fixture("image_ln_zscore_avg");
    assert_eq!(gshape.to_vec(), wshape);
    assert_close("image ln zscore avg", &got, &want, 1e-5, 1e-4);
}

#[test]
fn default_plan_for_the_benchmark_traces() {
    // 6000 samples → 224×224: n_fft 2·224, hop round(6000/224) = 27, 1 + 6000/27 = 223 frames.
    let plan = MelImagePlan::new(&MelImageConfig::default(), 6000).unwrap();
    assert_eq!((plan.n_fft, plan.hop, plan.frames), (448, 27, 223));
    let one = MelImageConfig {
        width: 1,
        ..Default::default()
    };
    assert_eq!(MelImagePlan::new(&one, 6000).unwrap().hop, 6000);
}

#[test]
fn bad_parameters_are_errors_not_panics() {
    let x = vec![0.5f32; 100];
    assert!(spectrogram(&x, &StftConfig::new(256, 10), 2.0).is_err()); // reflect pad ≥ len
    assert!(spectrogram(&x, &StftConfig::new(64, 0), 2.0).is_err());
    let mut nc = StftConfig::new(128, 10);
    nc.center = false;
    assert!(spectrogram(&x, &nc, 2.0).is_err());
    let mut p = cfg_a().mel;
    p.f_min = 60.0;
    assert!(MelFilterbank::new(&p).is_err());
    assert!(mel_images(&x, 1, 1, 99, &MelImageConfig::default()).is_err());
    let bad = MelImageConfig {
        top_db: Some(80.0),
        ..Default::default()
    };
    assert!(mel_images(&x, 1, 1, 100, &bad).is_err());
}

#[test]
fn mel_spectrograms_match_torchaudio() {
    // tools/make_mel_torchaudio_fixtures.py: torchaudio's MelSpectrogram defaults equal cfg_a.
    for s in SIGNALS {
        let x = sig(s);
        let got = mel_spectrogram(&x, &cfg_a()).unwrap();
        let (shape, want) = fixture(&format!("ta_spec_a_{s}"));
        assert_eq!(shape, vec![16, cfg_a().stft.n_frames(x.len()).unwrap()]);
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
        assert_close(
            &format!("torchaudio spec_a {s}"),
            &got,
            &want,
            2e-5,
            2e-5 * scale,
        );
        let mut db = got.clone();
        power_to_db(&mut db, 1.0, 1e-10, Some(80.0));
        let (_, want_db) = fixture(&format!("ta_db_a_{s}"));
        assert_close(&format!("torchaudio db_a {s}"), &db, &want_db, 1e-5, 1e-2);
    }
}

/// The tensor-level ops on the CPU (what users run without a GPU, and the oracle of the CUDA
/// parity tests) against librosa: `ops::mel::log_mel` in dB, then clipped 80 dB below the peak
/// as librosa's `power_to_db(top_db=80)`.
#[test]
fn log_mel_op_on_the_cpu_matches_librosa() {
    use seisfuse::ops::mel::{log_mel, LogMelSpec};
    for s in SIGNALS {
        let x = sig(s);
        let a = cfg_a();
        let spec = LogMelSpec {
            stft: a.stft.clone(),
            mel: a.mel.clone(),
            log: LogKind::Db {
                amin: 1e-10,
                ref_value: 1.0,
            },
        };
        // two copies of the trace as a batch of 2: the second must not differ from the first
        let xt =
            seisfuse::Tensor::from_f32(&[2, x.len()], [x.clone(), x.clone()].concat()).unwrap();
        let got = log_mel(&xt, &spec).unwrap();
        let (shape, want_db) = fixture(&format!("db_a_{s}"));
        assert_eq!(got.shape, [vec![2], shape].concat());
        let got = got.to_vec_f32().unwrap();
        for half in got.chunks(want_db.len()) {
            let mut db = half.to_vec();
            let mx = db.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            seisfuse::dsp::mel::clip_top_db(&mut db, mx, 80.0);
            assert_close(&format!("op log_mel db_a {s}"), &db, &want_db, 1e-5, 1e-2);
        }
    }
}

/// `ops::mel::mel_images` on the CPU against the documented recipe as librosa computes it.
#[test]
fn mel_images_op_on_the_cpu_matches_the_recipe() {
    let (shape, waves) = fixture("image_waves");
    let x = seisfuse::Tensor::from_f32(&shape, waves).unwrap();
    let base = MelImageConfig {
        height: 32,
        width: 48,
        ..Default::default()
    };
    let cfgs = [
        (base.clone().with_db(Some(80.0)), "image_db_minmax"),
        (
            MelImageConfig {
                normalize: Normalize::ZScore,
                average_channels: true,
                ..base
            },
            "image_ln_zscore_avg",
        ),
    ];
    for (cfg, name) in cfgs {
        let got = seisfuse::ops::mel::mel_images(&x, &cfg).unwrap();
        let (wshape, want) = fixture(name);
        assert_eq!(got.shape, wshape);
        assert_close(
            &format!("op {name}"),
            &got.to_vec_f32().unwrap(),
            &want,
            1e-5,
            1e-4,
        );
    }
}

/// `ops::mel::log_mel_backward` on the CPU against central differences of `ops::mel::log_mel`
/// (natural log, so that the check is not dominated by the dB scale factor).
#[test]
fn log_mel_op_backward_matches_differences() {
    use seisfuse::ops::mel::{log_mel, log_mel_backward, LogMelSpec};
    let mut stft = StftConfig::new(16, 4);
    stft.pad_mode = PadMode::Reflect;
    let spec = LogMelSpec {
        stft,
        mel: MelParams {
            sample_rate: 100.0,
            n_fft: 16,
            n_mels: 5,
            f_min: 0.0,
            f_max: None,
            scale: MelScale::Htk,
            norm: MelNorm::Slaney,
        },
        log: LogKind::Ln { floor: 1e-6 },
    };
    let t = 40;
    let x: Vec<f32> = (0..t)
        .map(|i| (i as f32 * 0.37).sin() + 0.3 * (i as f32 * 1.3).cos())
        .collect();
    let f = |v: &[f32]| -> Vec<f32> {
        log_mel(
            &seisfuse::Tensor::from_f32(&[1, t], v.to_vec()).unwrap(),
            &spec,
        )
        .unwrap()
        .to_vec_f32()
        .unwrap()
    };
    let y = f(&x);
    let w: Vec<f32> = (0..y.len()).map(|i| ((i * 7) % 5) as f32 - 2.0).collect();
    let xt = seisfuse::Tensor::from_f32(&[1, t], x.clone()).unwrap();
    let dy = seisfuse::Tensor::from_f32(&[1, 5, y.len() / 5], w.clone()).unwrap();
    let dx = log_mel_backward(&xt, &dy, &spec)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    common::check_grad("log_mel op backward", &x, &w, &dx, 1e-3, 2e-2, f);
}
