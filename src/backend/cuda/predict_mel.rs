//! The predicted cost of kernels/stft_mel.cu's launches, from the wrapper's own plan
//! ([`stft_mel::Launch`]): `seisfuse bench mel --predict` maps the benchmark's planned
//! launches through [`planned`] and prices them as `seisfuse profile` prices a training step
//! (cli/profile.rs). The recorded ops of a model step carry no mel tables, so the mel kernels
//! are priced here from the launches rather than in [`super::predict::plan`].
//!
//! FLOPs: a complex FFT of N points counts 5·N·log2 N (the usual convention), a direct DFT
//! 4·N per output bin (a real frame times a complex twiddle), the mel projection 2 per
//! non-zero filter weight, the two-frame separation 12 per bin. Bytes are compulsory traffic:
//! each trace, log-mel and image read or written once; the small tables (window, twiddles,
//! filterbank) are not counted. The FFT kernels' lane utilisation ([`Planned::lanes`]) is
//! counted from the plan: a Stockham stage with fewer butterflies than threads leaves lanes
//! idle, which the FLOP count alone cannot show.

use super::predict::{Planned, Unit};
use super::stft_mel::{Launch, MelKernel, MelTables};

/// Multiply-adds of the mel projection of one frame (2 per non-zero filter weight).
fn mel_flops(tb: &MelTables) -> f64 {
    let nz: i64 = tb
        .ranges
        .chunks(2)
        .map(|r| (r[1] - r[0]).max(0) as i64)
        .sum();
    2.0 * nz as f64
}

/// The share of `threads` lanes busy when `work` equal items are spread over them.
fn busy(work: f64, threads: f64) -> f64 {
    if work <= 0.0 || threads <= 0.0 {
        return 1.0;
    }
    work / ((work / threads).ceil() * threads)
}

/// Lane utilisation of an FFT kernel running `count` FFTs of N points side by side on
/// `threads` threads and writing `outputs` mel values per block: each Stockham stage of radix
/// R has count·N/R butterflies (weighted by its share log2 R of the FFT's FLOPs), the mel
/// projection one item per output; the two are weighted by their FLOPs per frame.
fn fft_lanes(tb: &MelTables, n: f64, count: f64, threads: f64, outputs: f64, fft: f64) -> f64 {
    let radices = tb.radices.as_deref().unwrap_or(&[]);
    let total_log: f64 = radices.iter().map(|&r| (r as f64).log2()).sum();
    // time per unit of FFT work: Σ over stages of (its share) / (its utilisation)
    let fft_time: f64 = radices
        .iter()
        .map(|&r| (r as f64).log2() / total_log.max(1e-9) / busy(count * n / r as f64, threads))
        .sum::<f64>()
        .max(1.0);
    let mel = mel_flops(tb) + tb.n_mels as f64;
    (fft + mel) / (fft * fft_time + mel / busy(outputs, threads))
}

/// The launch priced: FLOPs and bytes from the kernel's arguments and grid.
pub fn planned(l: &Launch, tb: &MelTables) -> Planned {
    let cfg = l.cfg;
    let traces = cfg.grid_dim.1 as f64;
    let f32b = 4.0;
    let frame_cost = |t: i32, frames: i32, n_mels: i32, per_frame: f64| {
        let frames = frames as f64;
        let flops = traces * frames * (per_frame + mel_flops(tb) + n_mels as f64);
        let bytes = traces * f32b * (t as f64 + n_mels as f64 * frames);
        (flops, bytes)
    };
    let fft = |n: i32| {
        let n = n as f64;
        // per frame: half of a complex FFT (two frames share one) and the separation
        0.5 * 5.0 * n * n.log2() + 12.0 * (n / 2.0 + 1.0) / 2.0
    };
    let dft = |n: i32| {
        let n = n as f64;
        4.0 * n * (n / 2.0 + 1.0)
    };
    let threads = (cfg.block_dim.0 * cfg.block_dim.1 * cfg.block_dim.2) as f64;
    let mut lanes = 1.0;
    let (op, flops, bytes, unit) = match &l.kernel {
        MelKernel::FramesFft(k) => {
            let (f, b) = frame_cost(k.t, k.frames, k.n_mels, fft(k.n_fft));
            let outputs = 2.0 * k.n_mels as f64;
            lanes = fft_lanes(tb, k.n_fft as f64, 1.0, threads, outputs, fft(k.n_fft));
            ("log_mel", f, b, Unit::Fp32)
        }
        MelKernel::TileFft(k) => {
            let (f, b) = frame_cost(k.t, k.frames, k.n_mels, fft(k.n_fft));
            let (n, pairs) = (k.n_fft as f64, k.pairs as f64);
            let outputs = 2.0 * pairs * k.n_mels as f64;
            lanes = fft_lanes(tb, n, pairs, threads, outputs, fft(k.n_fft));
            ("log_mel", f, b, Unit::Fp32)
        }
        MelKernel::FramesDft(k) => {
            let (f, b) = frame_cost(k.t, k.frames, k.n_mels, dft(k.n_fft));
            ("log_mel", f, b, Unit::Fp32)
        }
        MelKernel::FramesBackwardDft(k) => {
            // the forward DFT again, the chain rule through the mels, the inverse DFT
            let (n, nm, fr) = (k.n_fft as f64, k.n_mels as f64, k.frames as f64);
            let per = 2.0 * dft(k.n_fft) + 2.0 * mel_flops(tb) + 2.0 * nm * (n / 2.0 + 1.0);
            let bytes = traces * f32b * (k.t as f64 + nm * fr + fr * n);
            ("log_mel_backward", traces * fr * per, bytes, Unit::Fp32)
        }
        MelKernel::OverlapAddBackward(k) => {
            let total = k.total as f64;
            let reads = (k.n_fft as f64 / k.hop.max(1) as f64).ceil();
            let frames_bytes = total / k.t.max(1) as f64 * k.frames as f64 * k.n_fft as f64;
            (
                "log_mel_backward",
                total * reads,
                f32b * (total + frames_bytes),
                Unit::Memory,
            )
        }
        MelKernel::ImageFinish(k) => {
            let images = cfg.grid_dim.0 as f64;
            let (h, f, w) = (k.h as f64, k.f as f64, k.w as f64);
            (
                "mel_image_finish",
                images * h * w * 8.0,
                images * f32b * (h * f + h * w),
                Unit::Memory,
            )
        }
        MelKernel::MeanOverChannels(k) => {
            let total = k.total as f64;
            (
                "mean_over_channels",
                total * k.channels as f64,
                f32b * total * (k.channels as f64 + 1.0),
                Unit::Memory,
            )
        }
    };
    let cost = (flops, bytes, unit);
    Planned {
        lanes,
        ..Planned::kernel(l.name().to_string(), "stft_mel", op, cfg, cost)
    }
}
