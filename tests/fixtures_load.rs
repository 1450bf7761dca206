//! The committed PyTorch fixtures (tests/fixtures/, made by tools/make_fixtures.py) load with
//! the weights loader, hold the documented keys and shapes, and agree with themselves: each
//! stored loss is recomputed here from the stored outputs. Model parity tests live elsewhere.

use seisfuse::nn::{Param, ParamVisitor, Parameters};
use seisfuse::weights::names::MAE_DECODER_PREFIXES;
use seisfuse::weights::{detect, load_into_with, Family, LoadOptions, SafetensorsFile};
use seisfuse::Tensor;
use std::path::PathBuf;

fn fixture(name: &str) -> SafetensorsFile {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    SafetensorsFile::open(&path).unwrap_or_else(|e| panic!("{e:#}"))
}

fn shape(f: &SafetensorsFile, name: &str) -> Vec<usize> {
    f.info(name)
        .unwrap_or_else(|| panic!("{}: no tensor {name}", f.path().display()))
        .shape
}

fn values(f: &SafetensorsFile, name: &str) -> Vec<f64> {
    f.read_f32(name)
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-12)
}

/// A model made of whatever parameters a file lists, zero-filled.
struct Bag(Vec<(String, Param)>);

impl Bag {
    fn from_file(f: &SafetensorsFile, prefix: &str) -> Bag {
        let mut v = Vec::new();
        for i in f.infos() {
            if let Some(n) = i.name.strip_prefix(prefix) {
                let t = Tensor::from_f32(&i.shape, vec![0.0; i.numel()]).unwrap();
                v.push((n.to_string(), Param::new(t).unwrap()));
            }
        }
        Bag(v)
    }
}

impl Parameters for Bag {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> anyhow::Result<()> {
        for (n, p) in &mut self.0 {
            f(&format!("{prefix}{n}"), p)?;
        }
        Ok(())
    }
}

/// Every `param.*` loads strictly into a model of those names (the other keys lie outside
/// the prefix), and the values arrive unchanged.
fn loads_params(f: &SafetensorsFile) -> usize {
    let mut bag = Bag::from_file(f, "param.");
    let opts = LoadOptions {
        strict: true,
        strip_prefix: Some("param.".into()),
        ..Default::default()
    };
    let report = load_into_with(&mut bag, f.path(), &opts).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(report.is_exact());
    for (n, p) in &bag.0 {
        assert_eq!(
            p.value.to_vec_f32().unwrap(),
            f.read_f32(&format!("param.{n}")).unwrap()
        );
    }
    bag.0.len()
}

fn vit_param_names(prefix: &str, depth: usize) -> Vec<String> {
    let mut v: Vec<String> = ["cls_token", "pos_embed", "patch_embed.proj.weight"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.push("patch_embed.proj.bias".into());
    for b in 0..depth {
        for l in [
            "norm1",
            "attn.qkv",
            "attn.proj",
            "norm2",
            "mlp.fc1",
            "mlp.fc2",
        ] {
            for w in ["weight", "bias"] {
                v.push(format!("blocks.{b}.{l}.{w}"));
            }
        }
    }
    v.push("norm.weight".into());
    v.push("norm.bias".into());
    v.into_iter().map(|n| format!("{prefix}{n}")).collect()
}

fn check_vit_encoder(f: &SafetensorsFile) {
    assert_eq!(shape(f, "param.cls_token"), [1, 1, 36]);
    assert_eq!(shape(f, "param.pos_embed"), [1, 26, 36]);
    assert_eq!(shape(f, "param.patch_embed.proj.weight"), [36, 1, 8, 8]);
    assert_eq!(shape(f, "param.blocks.1.attn.qkv.weight"), [108, 36]);
    assert_eq!(shape(f, "param.blocks.1.mlp.fc1.weight"), [144, 36]);
    assert_eq!(shape(f, "input.images"), [2, 1, 40, 40]);
    assert_eq!(shape(f, "input.raw_images"), [2, 1, 40, 40]);
    for n in vit_param_names("", 2) {
        let p = format!("param.{n}");
        let g = format!("grad.{n}");
        assert!(f.contains(&p), "missing {p}");
        // pos_embed is fixed (sin-cos), so it has no gradient.
        assert_eq!(f.contains(&g), n != "pos_embed", "{g}");
        if n != "pos_embed" {
            assert_eq!(shape(f, &g), shape(f, &p));
        }
    }
    // The sin-cos table: cls row zero; channel 0 = sin(column), channel 18 = sin(row).
    let pe = values(f, "param.pos_embed");
    assert!(pe[..36].iter().all(|&x| x == 0.0));
    let at = |tok: usize, ch: usize| pe[tok * 36 + ch];
    assert!(close(at(1 + 1, 0), 1f64.sin(), 1e-6)); // row 0, column 1
    assert_eq!(at(1 + 5, 0), 0.0); // row 1, column 0
    assert!(close(at(1 + 5, 18), 1f64.sin(), 1e-6));
    // input.images is input.raw_images normalised per image with the population std.
    let raw = values(f, "input.raw_images");
    let img = values(f, "input.images");
    for (r, x) in raw.chunks(1600).zip(img.chunks(1600)) {
        let mean = r.iter().sum::<f64>() / 1600.0;
        let std = (r.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 1600.0).sqrt();
        for (a, b) in r.iter().zip(x) {
            assert!(((a - mean) / (std + 1e-6) - b).abs() < 1e-5);
        }
    }
}

#[test]
fn vit_tiny_fixture() {
    let f = fixture("vit_tiny.safetensors");
    check_vit_encoder(&f);
    assert_eq!(shape(&f, "input.upstream"), [2, 26, 36]);
    assert_eq!(shape(&f, "output.tokens"), [2, 26, 36]);
    assert_eq!(shape(&f, "output.loss"), [1]);
    assert_eq!(shape(&f, "grad.input.images"), [2, 1, 40, 40]);
    assert_eq!(loads_params(&f), vit_param_names("", 2).len());
    let out = values(&f, "output.tokens");
    let up = values(&f, "input.upstream");
    let loss: f64 = out.iter().zip(&up).map(|(a, b)| a * b).sum();
    let stored = values(&f, "output.loss")[0];
    assert!(close(loss, stored, 1e-5), "{loss} vs {stored}");
    for k in ["torch", "timm", "config", "seed"] {
        assert!(f.metadata().contains_key(k), "metadata {k}");
    }
    let d = detect(&f.infos());
    assert_eq!(d.family, Family::SfmVit);
    assert_eq!(d.prefix, "param.");
    assert_eq!(
        (d.dim, d.depth, d.patch, d.img_size),
        (36, 2, Some(8), Some(40))
    );
    assert_eq!(d.preset, "custom");
}

/// MAE's loss from the stored prediction, mask and images: mean over each patch's pixels of
/// (pred − target)², summed over masked patches, over the number masked.
fn mae_loss(f: &SafetensorsFile, norm_pix: bool) -> f64 {
    let img = values(f, "input.images");
    let pred = values(f, "output.pred");
    let mask = values(f, "output.mask");
    let (n, g, p, side) = (2, 5, 8, 40);
    let (mut total, mut count) = (0.0, 0.0);
    for s in 0..n {
        for gi in 0..g {
            for gj in 0..g {
                let l = gi * g + gj;
                // patchify: pixel (row r, column c) of the patch at index r * p + c (one channel)
                let mut target: Vec<f64> = (0..p * p)
                    .map(|k| img[s * side * side + (gi * p + k / p) * side + gj * p + k % p])
                    .collect();
                if norm_pix {
                    let m = target.iter().sum::<f64>() / 64.0;
                    let var = target.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 63.0;
                    for v in &mut target {
                        *v = (*v - m) / (var + 1e-6).sqrt();
                    }
                }
                let pr = &pred[(s * 25 + l) * 64..(s * 25 + l + 1) * 64];
                let mse = pr
                    .iter()
                    .zip(&target)
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f64>()
                    / 64.0;
                total += mse * mask[s * 25 + l];
                count += mask[s * 25 + l];
            }
        }
    }
    total / count
}

fn check_mae(name: &str, norm_pix: bool) {
    let f = fixture(name);
    check_vit_encoder(&f);
    for (k, s) in [
        ("param.mask_token", vec![1, 1, 20]),
        ("param.decoder_embed.weight", vec![20, 36]),
        ("param.decoder_pos_embed", vec![1, 26, 20]),
        ("param.decoder_blocks.0.attn.qkv.weight", vec![60, 20]),
        ("param.decoder_norm.weight", vec![20]),
        ("param.decoder_pred.weight", vec![64, 20]),
        ("param.decoder_pred.bias", vec![64]),
        ("grad.mask_token", vec![1, 1, 20]),
        ("grad.decoder_pred.weight", vec![64, 20]),
        ("input.noise", vec![2, 25]),
        ("output.pred", vec![2, 25, 64]),
        ("output.mask", vec![2, 25]),
        ("output.latent", vec![2, 7, 36]),
        ("output.loss", vec![1]),
    ] {
        assert_eq!(shape(&f, k), s, "{name}: {k}");
    }
    assert!(!f.contains("grad.decoder_pos_embed"));
    // Mask: 1 for the 19 patches whose noise is not among the 6 smallest.
    let noise = values(&f, "input.noise");
    let mask = values(&f, "output.mask");
    for s in 0..2 {
        let row = &noise[s * 25..(s + 1) * 25];
        for l in 0..25 {
            let rank = row.iter().filter(|&&x| x < row[l]).count();
            assert_eq!(mask[s * 25 + l], if rank >= 6 { 1.0 } else { 0.0 });
        }
    }
    let loss = mae_loss(&f, norm_pix);
    let stored = values(&f, "output.loss")[0];
    assert!(close(loss, stored, 1e-5), "{name}: {loss} vs {stored}");
    let d = detect(&f.infos());
    assert_eq!(d.family, Family::SfmMae);
    assert_eq!((d.decoder_dim, d.decoder_depth), (Some(20), Some(1)));
    assert!(loads_params(&f) > vit_param_names("", 2).len());
}

/// An SFM pretraining checkpoint (encoder + MAE decoder) loads strictly into an encoder-only
/// model when the decoder's names are ignored, and fails strictly when they are not.
#[test]
fn mae_checkpoint_into_encoder_only() {
    let f = fixture("mae_tiny.safetensors");
    let encoder: Vec<String> = vit_param_names("", 2);
    let mut bag = Bag(encoder
        .iter()
        .map(|n| {
            let info = f.info(&format!("param.{n}")).unwrap();
            let t = Tensor::from_f32(&info.shape, vec![0.0; info.numel()]).unwrap();
            (n.clone(), Param::new(t).unwrap())
        })
        .collect());
    let mut opts = LoadOptions {
        strict: true,
        strip_prefix: Some("param.".into()),
        ..Default::default()
    };
    let e = format!(
        "{:#}",
        load_into_with(&mut bag, f.path(), &opts).unwrap_err()
    );
    assert!(e.contains("unexpected: param.decoder_pred.weight"), "{e}");
    assert!(e.contains("unexpected: param.mask_token"), "{e}");
    opts.ignore = MAE_DECODER_PREFIXES.iter().map(|s| s.to_string()).collect();
    let r = load_into_with(&mut bag, f.path(), &opts).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(r.loaded.len(), encoder.len());
    assert!(r
        .ignored
        .contains(&"param.decoder_blocks.0.attn.qkv.weight".to_string()));
    assert!(r.ignored.contains(&"param.decoder_pos_embed".to_string()));
    assert_eq!(
        bag.0[0].1.value.to_vec_f32().unwrap(),
        f.read_f32(&format!("param.{}", bag.0[0].0)).unwrap()
    );
}

#[test]
fn mae_tiny_fixture() {
    check_mae("mae_tiny.safetensors", false);
}

#[test]
fn mae_tiny_normpix_fixture() {
    check_mae("mae_tiny_normpix.safetensors", true);
}

#[test]
fn wav2vec2_tiny_fixture() {
    let f = fixture("wav2vec2_tiny.safetensors");
    for (k, s) in [
        (
            "param.feature_extractor.conv_layers.0.conv.weight",
            vec![16, 3, 3],
        ),
        (
            "param.feature_extractor.conv_layers.1.layer_norm.weight",
            vec![16],
        ),
        ("param.feature_projection.projection.weight", vec![24, 16]),
        ("param.encoder.pos_conv_embed.conv.weight_g", vec![1, 1, 8]),
        ("param.encoder.pos_conv_embed.conv.weight_v", vec![24, 6, 8]),
        (
            "param.encoder.layers.1.attention.q_proj.weight",
            vec![24, 24],
        ),
        (
            "param.encoder.layers.1.feed_forward.intermediate_dense.weight",
            vec![48, 24],
        ),
        ("param.encoder.layer_norm.weight", vec![24]),
        ("grad.encoder.pos_conv_embed.conv.weight_g", vec![1, 1, 8]),
        ("input.waveforms", vec![2, 3, 101]),
        ("input.upstream", vec![2, 24, 24]),
        ("output.last_hidden_state", vec![2, 24, 24]),
        ("output.extract_features", vec![2, 24, 16]),
        ("output.loss", vec![1]),
        ("grad.input.waveforms", vec![2, 3, 101]),
    ] {
        assert_eq!(shape(&f, k), s, "{k}");
    }
    for i in f.infos() {
        if let Some(n) = i.name.strip_prefix("param.") {
            assert!(f.contains(&format!("grad.{n}")), "no grad.{n}");
        }
    }
    let out = values(&f, "output.last_hidden_state");
    let up = values(&f, "input.upstream");
    let loss: f64 = out.iter().zip(&up).map(|(a, b)| a * b).sum();
    let stored = values(&f, "output.loss")[0];
    assert!(close(loss, stored, 1e-5), "{loss} vs {stored}");
    let d = detect(&f.infos());
    assert_eq!(d.family, Family::Seislm);
    assert_eq!((d.dim, d.depth, d.mlp_dim), (24, 2, Some(48)));
    assert_eq!(
        (d.conv_layers, d.conv_dim, d.pos_conv_kernel),
        (Some(2), Some(16), Some(8))
    );
    loads_params(&f);
}

#[test]
fn fixtures_stay_small() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let total: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        total < 2 * 1024 * 1024,
        "tests/fixtures holds {total} bytes"
    );
}
