//! Parity with PyTorch: the tiny ViT and MAE of tests/fixtures (made by tools/make_fixtures.py
//! with timm) load by their timm names, and our forward outputs, loss and every gradient match.
//! Runs on the CPU; each `_cuda` twin (ignored: it needs a GPU) runs the same on CUDA.

mod common;
use common::*;
use seisfuse::models::mae::{Mae, MaeConfig, Masking};
use seisfuse::models::sfm::{Vit, VitConfig};
use seisfuse::nn::{ParamStore, Parameters};
use seisfuse::weights::safetensors_io::SafetensorsFile;
use seisfuse::weights::{load_into_with, LoadOptions};
use seisfuse::{Device, Tensor};

fn tiny() -> VitConfig {
    VitConfig {
        img_h: 40,
        img_w: 40,
        in_chans: 1,
        patch: 8,
        dim: 36,
        depth: 2,
        heads: 3,
        mlp_ratio: 4.0,
        eps: 1e-6,
    }
}

fn load(model: &mut dyn Parameters, file: &str) -> SafetensorsFile {
    let path = common::fixtures_dir().join(file);
    let opts = LoadOptions {
        strict: true,
        strip_prefix: Some("param.".into()),
        ignore: vec![],
        ignore_suffixes: vec![],
    };
    let report = load_into_with(model, &path, &opts).unwrap();
    assert!(
        report.missing.is_empty() && report.unexpected.is_empty(),
        "{:?}",
        report.problems()
    );
    SafetensorsFile::open(&path).unwrap()
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(
        got.numel(),
        want.numel(),
        "{what}: sizes {:?} vs {:?}",
        got.shape,
        want.shape
    );
    let e = rel_err(&got.to_vec_f32().unwrap(), &want.to_vec_f32().unwrap());
    assert!(e < tol, "{what}: relative error {e:.3e} ≥ {tol:.0e}");
}

/// Every trainable parameter's gradient against `grad.<name>`.
fn check_grads(store: &ParamStore, f: &SafetensorsFile, tol: f64) -> usize {
    let mut n = 0;
    for e in store.entries().iter().filter(|e| e.trainable) {
        let want = f.tensor(&format!("grad.{}", e.name)).unwrap();
        let got = store.grad(&e.name).unwrap();
        assert_close(&format!("grad.{}", e.name), &got, &want, tol);
        n += 1;
    }
    n
}

#[test]
fn vit_matches_timm_forward_and_backward() {
    vit_matches_timm_forward_and_backward_on(Device::Cpu);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn vit_matches_timm_forward_and_backward_cuda() {
    vit_matches_timm_forward_and_backward_on(cuda("vit parity"));
}

fn vit_matches_timm_forward_and_backward_on(device: Device) {
    let dev = device.clone();
    {
        let mut vit = Vit::new(tiny(), 0).unwrap();
        let f = load(&mut vit, "vit_tiny.safetensors");
        let mut store = pack(&mut vit, &dev);
        let img = f.tensor("input.images").unwrap().to_device(&dev).unwrap();
        let up = f.tensor("input.upstream").unwrap().to_device(&dev).unwrap();
        let (out, cache) = vit.forward(&img, None).unwrap();
        assert_close("tokens", &out, &f.tensor("output.tokens").unwrap(), 1e-5);
        let loss: f64 = out
            .to_vec_f32()
            .unwrap()
            .iter()
            .zip(up.to_vec_f32().unwrap())
            .map(|(&a, b)| a as f64 * b as f64)
            .sum();
        let want = f.tensor("output.loss").unwrap().to_vec_f32().unwrap()[0] as f64;
        assert!(
            (loss - want).abs() < 1e-4 * want.abs().max(1.0),
            "loss {loss} vs {want}"
        );
        store.zero_grad().unwrap();
        let dimg = vit
            .backward(&cache, &up, &[], true, &mut store.grads)
            .unwrap()
            .unwrap();
        let n = check_grads(&store, &f, 1e-5);
        assert_close(
            "grad.input.images",
            &dimg,
            &f.tensor("grad.input.images").unwrap(),
            1e-5,
        );
        println!("{dev:?}: ViT forward, loss and {n} parameter gradients match timm");
    }
}

#[test]
fn mae_matches_reference_forward_and_backward() {
    mae_matches_reference_forward_and_backward_on(Device::Cpu);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn mae_matches_reference_forward_and_backward_cuda() {
    mae_matches_reference_forward_and_backward_on(cuda("mae parity"));
}

fn mae_matches_reference_forward_and_backward_on(device: Device) {
    for (file, norm_pix) in [
        ("mae_tiny.safetensors", false),
        ("mae_tiny_normpix.safetensors", true),
    ] {
        let dev = device.clone();
        {
            let cfg = MaeConfig {
                encoder: tiny(),
                decoder_dim: 20,
                decoder_depth: 1,
                decoder_heads: 2,
                mask_ratio: 0.75,
                norm_pix_loss: norm_pix,
            };
            let mut mae = Mae::new(cfg.clone(), 0).unwrap();
            let f = load(&mut mae, file);
            let mut store = pack(&mut mae, &dev);
            let img = f.tensor("input.images").unwrap().to_device(&dev).unwrap();
            let noise = f.tensor("input.noise").unwrap().to_vec_f32().unwrap();
            let masking = Masking::from_noise(&noise, 2, 25, cfg.len_keep()).unwrap();
            let want_mask = f.tensor("output.mask").unwrap().to_vec_f32().unwrap();
            assert_eq!(masking.mask, want_mask, "mask from the same noise");
            let out = mae.forward(&img, masking).unwrap();
            let want = f.tensor("output.loss").unwrap().to_vec_f32().unwrap()[0];
            assert!(
                (out.loss - want).abs() < 1e-5 * want.abs().max(1.0),
                "{file}: loss {} vs {want}",
                out.loss
            );
            assert_close(
                "pred",
                &out.cache.pred,
                &f.tensor("output.pred").unwrap(),
                1e-5,
            );
            store.zero_grad().unwrap();
            mae.backward(&out.cache, &mut store.grads).unwrap();
            let n = check_grads(&store, &f, 1e-5);
            println!("{dev:?} {file}: MAE loss, predictions and {n} parameter gradients match");
        }
    }
}

#[test]
fn vit_runs_in_bf16_for_inference() {
    vit_runs_in_bf16_for_inference_on(Device::Cpu);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn vit_runs_in_bf16_for_inference_cuda() {
    vit_runs_in_bf16_for_inference_on(cuda("vit bf16"));
}

fn vit_runs_in_bf16_for_inference_on(device: Device) {
    let dev = device.clone();
    {
        let mut vit = Vit::new(tiny(), 0).unwrap();
        let f = load(&mut vit, "vit_tiny.safetensors");
        let mut store = pack(&mut vit, &dev);
        let img = f.tensor("input.images").unwrap().to_device(&dev).unwrap();
        let (want, _) = vit.forward(&img, None).unwrap();
        store
            .set_compute_dtype(&mut vit, seisfuse::DType::BF16)
            .unwrap();
        let (got, _) = vit
            .forward(&img.to_dtype(seisfuse::DType::BF16).unwrap(), None)
            .unwrap();
        assert_eq!(got.dtype, seisfuse::DType::BF16);
        assert_close("bf16 tokens", &got, &want, 2e-2);
    }
}
