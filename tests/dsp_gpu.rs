//! CUDA vs CPU parity of the mel ops (log-mel forward on the FFT and DFT paths, backward, mel
//! images): the CUDA ops against the `dsp` reference. The parity tests need a GPU (ignored by a
//! plain `cargo test`, failing without CUDA when run). On the CPU the tensor-level ops are the
//! `dsp` functions themselves, so they are checked against librosa and by finite differences in
//! tests/dsp_reference.rs instead.

mod common;
use seisfuse::backend::cuda::stft_mel::fft_radices;
use seisfuse::dsp::*;
use seisfuse::ops::mel::{log_mel, log_mel_backward, mel_images, LogMelSpec};
use seisfuse::{Device, Tensor};

fn devices(test: &str) -> Vec<Device> {
    vec![common::cuda(test)]
}

fn waves(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let noise = (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            noise + (i as f32 * 0.05).sin() * (1.0 + (i as f32 * 0.001).cos())
        })
        .collect()
}

fn rel(a: &[f32], b: &[f32]) -> f64 {
    let (mut n, mut d) = (0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        n += (*x as f64 - *y as f64).powi(2);
        d += (*y as f64).powi(2);
    }
    (n / d.max(1e-300)).sqrt()
}

fn spec(n_fft: usize, hop: usize, pad: PadMode, center: bool, log: LogKind) -> LogMelSpec {
    let mut stft = StftConfig::new(n_fft, hop);
    stft.pad_mode = pad;
    stft.center = center;
    LogMelSpec {
        stft,
        mel: MelParams {
            sample_rate: 100.0,
            n_fft,
            n_mels: 24,
            f_min: 0.5,
            f_max: None,
            scale: MelScale::Htk,
            norm: MelNorm::Slaney,
        },
        log,
    }
}

fn specs() -> Vec<LogMelSpec> {
    let ln = LogKind::Ln { floor: 1e-10 };
    let db = LogKind::Db {
        amin: 1e-10,
        ref_value: 1.0,
    };
    vec![
        spec(448, 27, PadMode::Reflect, true, db), // the benchmark size, FFT 8·8·7
        spec(64, 16, PadMode::Constant, true, ln), // FFT 8·8
        spec(60, 15, PadMode::Reflect, false, LogKind::Linear), // FFT 4·3·5
        spec(62, 20, PadMode::Reflect, true, ln),  // 2·31: direct-DFT fallback
    ]
}

#[test]
fn fft_sizes_take_the_fast_path() {
    assert_eq!(fft_radices(448), Some(vec![8, 8, 7]));
    assert_eq!(fft_radices(60), Some(vec![4, 3, 5]));
    assert_eq!(fft_radices(62), None);
    assert_eq!(fft_radices(2048).map(|r| r.iter().product()), Some(2048));
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn log_mel_forward_and_backward_parity() {
    let (b, t) = (3, 1201);
    let xv = waves(b * t, 7);
    for s in specs() {
        let x = Tensor::from_f32(&[b, t], xv.clone()).unwrap();
        let reference = s.plan().unwrap();
        let want: Vec<f32> = (0..b)
            .flat_map(|i| reference.forward(&xv[i * t..(i + 1) * t]).unwrap())
            .collect();
        let f = reference.n_frames(t).unwrap();
        let dyv = waves(b * 24 * f, 9);
        let dy = Tensor::from_f32(&[b, 24, f], dyv.clone()).unwrap();
        let want_dx: Vec<f32> = (0..b)
            .flat_map(|i| {
                reference
                    .backward(&xv[i * t..(i + 1) * t], &dyv[i * 24 * f..(i + 1) * 24 * f])
                    .unwrap()
            })
            .collect();
        for d in devices("log_mel parity") {
            // both mel variants (the FFT path: a block per frame pair, and tiles of frames)
            for v in ["mel=1", "mel=2"] {
                seisfuse::backend::variants::set(v).unwrap();
                let got = log_mel(&x.to_device(&d).unwrap(), &s).unwrap();
                assert_eq!(got.shape, vec![b, 24, f]);
                let e = rel(&got.to_vec_f32().unwrap(), &want);
                eprintln!("{d:?} {v} n_fft {}: forward rel {e:.2e}", s.stft.n_fft);
                assert!(
                    e < 1e-5,
                    "{d:?} {v} n_fft {}: forward rel {e:.3e}",
                    s.stft.n_fft
                );
            }
            seisfuse::backend::variants::set("").unwrap();
            let dx = log_mel_backward(&x.to_device(&d).unwrap(), &dy.to_device(&d).unwrap(), &s)
                .unwrap();
            let e = rel(&dx.to_vec_f32().unwrap(), &want_dx);
            eprintln!("{d:?} n_fft {}: backward rel {e:.2e}", s.stft.n_fft);
            assert!(
                e < 1e-4,
                "{d:?} n_fft {}: backward rel {e:.3e}",
                s.stft.n_fft
            );
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn mel_image_parity() {
    let (n, c, t) = (2, 3, 1500);
    let xv = waves(n * c * t, 3);
    let base = MelImageConfig {
        height: 40,
        width: 56,
        ..Default::default()
    };
    let cfgs = [
        base.clone().with_db(Some(80.0)),
        MelImageConfig {
            normalize: Normalize::ZScore,
            average_channels: true,
            scale: MelScale::Slaney,
            ..base.clone()
        },
        MelImageConfig {
            normalize: Normalize::None,
            n_fft: Some(90),
            hop: Some(25),
            ..base
        },
    ];
    for cfg in cfgs {
        let (want, shape) = seisfuse::dsp::mel_images(&xv, n, c, t, &cfg).unwrap();
        for d in devices("mel image parity") {
            let x = Tensor::from_f32(&[n, c, t], xv.clone())
                .unwrap()
                .to_device(&d)
                .unwrap();
            let got = mel_images(&x, &cfg).unwrap();
            assert_eq!(got.shape, shape.to_vec());
            let e = rel(&got.to_vec_f32().unwrap(), &want);
            eprintln!("{d:?} {:?}: images rel {e:.2e}", cfg.normalize);
            assert!(e < 1e-4, "{d:?} {cfg:?}: images rel {e:.3e}");
        }
    }
}
