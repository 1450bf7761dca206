//! Parity with PyTorch: the tiny HF Wav2Vec2Model of tests/fixtures/wav2vec2_tiny.safetensors
//! (made by tools/make_fixtures.py: feature extractor → feature projection → encoder, 3 input
//! channels) loads strictly by HF names, and our last_hidden_state, extract_features, loss, every
//! parameter gradient (weight_g / weight_v included) and the waveform gradient match.
//! Runs on the CPU; the `_cuda` twin (ignored: it needs a GPU) runs the same on CUDA. Also:
//! preset shapes and sizes.

mod common;
use common::*;
use seisfuse::models::seislm::{Seislm, SeislmConfig};
use seisfuse::nn::Parameters;
use seisfuse::weights::safetensors_io::SafetensorsFile;
use seisfuse::weights::{load_into_with, LoadOptions};
use seisfuse::{Device, Tensor};

fn fixture_path() -> std::path::PathBuf {
    common::fixtures_dir().join("wav2vec2_tiny.safetensors")
}

/// The fixture's config (see its metadata): HF creates no masked_spec_embed without masking.
fn tiny_hf() -> SeislmConfig {
    SeislmConfig {
        in_chans: 3,
        conv_layers: vec![(16, 3, 2), (16, 3, 2)],
        hidden: 24,
        layers: 2,
        heads: 4,
        ffn: 48,
        pos_kernel: 8,
        pos_groups: 4,
        eps: 1e-5,
        masked_spec_embed: false,
    }
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f64) -> f64 {
    assert_eq!(
        got.numel(),
        want.numel(),
        "{what}: sizes {:?} vs {:?}",
        got.shape,
        want.shape
    );
    let e = rel_err(&got.to_vec_f32().unwrap(), &want.to_vec_f32().unwrap());
    assert!(e < tol, "{what}: relative error {e:.3e} ≥ {tol:.0e}");
    e
}

#[test]
fn seislm_matches_hf_wav2vec2_forward_and_backward() {
    seislm_matches_hf_wav2vec2_forward_and_backward_on(Device::Cpu);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn seislm_matches_hf_wav2vec2_forward_and_backward_cuda() {
    seislm_matches_hf_wav2vec2_forward_and_backward_on(cuda("seislm parity"));
}

fn seislm_matches_hf_wav2vec2_forward_and_backward_on(device: Device) {
    let tol = 1e-5;
    let dev = device.clone();
    {
        let mut model = Seislm::new(tiny_hf(), 0).unwrap();
        let opts = LoadOptions {
            strict: true,
            strip_prefix: Some("param.".into()),
            ignore: vec![],
            ignore_suffixes: vec![],
        };
        let report = load_into_with(&mut model, fixture_path(), &opts).unwrap();
        assert!(report.is_exact(), "{:?}", report.problems());
        let f = SafetensorsFile::open(fixture_path()).unwrap();
        let mut store = pack(&mut model, &dev);
        let wave = f
            .tensor("input.waveforms")
            .unwrap()
            .to_device(&dev)
            .unwrap();
        let up = f.tensor("input.upstream").unwrap().to_device(&dev).unwrap();
        let (out, cache) = model.forward(&wave, None).unwrap();
        assert_eq!(out.last_hidden_state.shape, vec![2, 24, 24]);
        assert_eq!(out.extract_features.shape, vec![2, 24, 16]);
        let mut worst = 0.0f64;
        worst = worst.max(assert_close(
            "extract_features",
            &out.extract_features,
            &f.tensor("output.extract_features").unwrap(),
            tol,
        ));
        worst = worst.max(assert_close(
            "last_hidden_state",
            &out.last_hidden_state,
            &f.tensor("output.last_hidden_state").unwrap(),
            tol,
        ));
        let loss: f64 = out
            .last_hidden_state
            .to_vec_f32()
            .unwrap()
            .iter()
            .zip(up.to_vec_f32().unwrap())
            .map(|(&a, b)| a as f64 * b as f64)
            .sum();
        let want = f.tensor("output.loss").unwrap().to_vec_f32().unwrap()[0] as f64;
        assert!(
            (loss - want).abs() < 1e-5 * want.abs().max(1.0),
            "loss {loss} vs {want}"
        );
        store.zero_grad().unwrap();
        let dwave = model
            .backward(&cache, &up, None, true, &mut store.grads)
            .unwrap()
            .unwrap();
        let mut n = 0;
        for e in store.entries() {
            let name = &e.name;
            let want = f.tensor(&format!("grad.{name}")).unwrap();
            let grad = store.grad(name).unwrap();
            if name.ends_with("k_proj.bias") {
                // Softmax ignores a shift common to all keys, so this gradient is zero up to
                // rounding in both implementations: compare absolutely.
                let g = grad.to_vec_f32().unwrap();
                let norm = g.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
                let wn = rel_err(&want.to_vec_f32().unwrap(), &vec![0.0; g.len()]);
                assert!(
                    norm < 1e-5 && wn < 1e-5,
                    "grad.{name}: norms {norm:.2e} (ours) and {wn:.2e} (HF) should both be ~0"
                );
            } else {
                worst = worst.max(assert_close(&format!("grad.{name}"), &grad, &want, tol));
            }
            n += 1;
        }
        assert_eq!(n, 49, "every parameter of the fixture has a gradient");
        worst = worst.max(assert_close(
            "grad.input.waveforms",
            &dwave,
            &f.tensor("grad.input.waveforms").unwrap(),
            tol,
        ));
        println!(
            "{dev:?}: forward, loss, {n} parameter gradients and the waveform gradient match HF (worst relative error {worst:.2e})"
        );
    }
}

#[test]
fn presets_give_749_frames_for_3001_samples() {
    for name in ["seislm-base", "seislm-large", "seislm-tiny"] {
        let cfg = SeislmConfig::preset(name).unwrap();
        assert_eq!(cfg.frames(3001), Some(749), "{name}");
    }
    assert!(SeislmConfig::preset("seislm-huge").is_err());
    // The tiny preset runs end to end on a 30 s window.
    let model = Seislm::new(SeislmConfig::preset("seislm-tiny").unwrap(), 1).unwrap();
    let wave = rand_tensor(&[1, 3, 3001], 2);
    let (out, _) = model.forward(&wave, None).unwrap();
    assert_eq!(out.last_hidden_state.shape, vec![1, 749, 48]);
    assert_eq!(out.extract_features.shape, vec![1, 749, 32]);
}

#[test]
fn seislm_base_shape_3001_to_749() {
    let model = Seislm::new(SeislmConfig::preset("seislm-base").unwrap(), 0).unwrap();
    let wave = rand_tensor(&[1, 3, 3001], 3);
    let (out, _) = model.forward(&wave, None).unwrap();
    assert_eq!(out.last_hidden_state.shape, vec![1, 749, 240]);
    assert_eq!(out.extract_features.shape, vec![1, 749, 256]);
    assert!(out
        .last_hidden_state
        .to_vec_f32()
        .unwrap()
        .iter()
        .all(|v| v.is_finite()));
}

#[test]
fn parameter_counts_match_the_reference() {
    // docs/reference.md: seislm-base ≈ 11.0M, seislm-large ≈ 90.2M.
    for (name, want) in [("seislm-base", 11.0e6), ("seislm-large", 90.2e6)] {
        let mut m = Seislm::new(SeislmConfig::preset(name).unwrap(), 0).unwrap();
        let n = m.num_params().unwrap();
        println!("{name}: {n} parameters");
        assert!(
            ((n as f64) - want).abs() < 0.05e6,
            "{name}: {n} parameters, docs/reference.md says ≈{want}"
        );
    }
}

#[test]
fn bad_waveforms_and_masks_are_errors() {
    let model = Seislm::new(SeislmConfig::preset("seislm-tiny").unwrap(), 1).unwrap();
    let e = |w: &Tensor, m: Option<&[bool]>| {
        format!("{:#}", model.forward(w, m).err().expect("must fail"))
    };
    assert!(e(&rand_tensor(&[1, 2, 100], 1), None).contains("components"));
    assert!(e(&rand_tensor(&[3, 100], 1), None).contains("[batch"));
    assert!(e(&rand_tensor(&[1, 3, 5], 1), None).contains("too few"));
    assert!(e(&rand_tensor(&[1, 3, 101], 1), Some(&[true; 3])).contains("mask"));
    let no_emb = Seislm::new(tiny_hf(), 0).unwrap();
    let r = no_emb.forward(&rand_tensor(&[1, 3, 101], 1), Some(&[false; 24]));
    assert!(format!("{:#}", r.err().unwrap()).contains("masked_spec_embed"));
}
