//! Position-table interpolation as SFM-Finetune does it (MAE's `interpolate_pos_embed`: cls row
//! kept, grid rows through `F.interpolate(mode='bicubic', align_corners=False)`), against
//! PyTorch (tests/fixtures/pos_embed_bicubic.safetensors, made by
//! tools/make_pos_embed_fixtures.py), and through the checkpoint loader.

mod common;
use common::fixtures_dir;
use seisfuse::models::pos_embed::{interpolate_pos_embed, sincos_2d};
use seisfuse::models::sfm::{Vit, VitConfig};
use seisfuse::nn::Parameters;
use seisfuse::weights::{
    load_from_file_interpolating, save_from, save_tensors, Interpolated, LoadOptions,
    SafetensorsFile, SaveOptions,
};
use seisfuse::Tensor;
use std::path::PathBuf;

/// (fixture case, source grid, target grid).
type Case = (&'static str, (usize, usize), (usize, usize));
const CASES: &[Case] = &[
    ("small_7x7", (4, 4), (7, 7)),
    ("small_3x5", (4, 4), (3, 5)),
    ("wide_6x10", (3, 5), (6, 10)),
    ("real_32x32", (14, 14), (32, 32)),
];

fn fixture() -> SafetensorsFile {
    SafetensorsFile::open(fixtures_dir().join("pos_embed_bicubic.safetensors"))
        .unwrap_or_else(|e| panic!("{e:#} (regenerate with tools/make_pos_embed_fixtures.py)"))
}

/// max |a − b| / max |b|.
fn max_rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
    let err = a
        .iter()
        .zip(b)
        .fold(0f64, |m, (&x, &y)| m.max((x as f64 - y as f64).abs()));
    err / scale
}

#[test]
fn bicubic_interpolation_matches_pytorch() {
    let f = fixture();
    for &(name, from, to) in CASES {
        let input = f.read_f32(&format!("{name}.input")).unwrap();
        let want = f.read_f32(&format!("{name}.output")).unwrap();
        let got = interpolate_pos_embed(&input, 8, 1, from, to).unwrap();
        let e = max_rel(&got, &want);
        eprintln!("{name}: {from:?} -> {to:?}: max rel err {e:.2e}");
        assert!(e < 1e-6, "{name}: max rel err {e:.3e}");
        assert_eq!(&got[..8], &input[..8], "{name}: the cls row is kept");
    }
    // Bad sizes are errors, not panics.
    assert!(interpolate_pos_embed(&[0.0; 10], 8, 1, (2, 2), (3, 3)).is_err());
    assert!(interpolate_pos_embed(&[0.0; 40], 8, 1, (2, 2), (0, 3)).is_err());
}

fn tiny(img: usize) -> VitConfig {
    VitConfig {
        img_h: img,
        img_w: img,
        in_chans: 1,
        patch: 16,
        dim: 8,
        depth: 1,
        heads: 2,
        mlp_ratio: 2.0,
        eps: 1e-6,
    }
}

struct TempFile(PathBuf);
impl TempFile {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "seisfuse-posembed-{tag}-{}.safetensors",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&p);
        TempFile(p)
    }
}
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn values(m: &mut dyn Parameters) -> Vec<(String, Vec<f32>)> {
    let mut out = Vec::new();
    m.visit("", &mut |n, p| {
        out.push((n.to_string(), p.value.to_vec_f32()?));
        Ok(())
    })
    .unwrap();
    out
}

/// A 224×224 checkpoint (14×14 grid, a table that is not sin-cos) loads strictly into a
/// 512×512 model: the table is the PyTorch interpolation, the rest is copied, and the report
/// says what was interpolated. Random init keeps the exact sin-cos table.
#[test]
fn loading_a_checkpoint_for_another_size_interpolates_its_table() {
    let f = fixture();
    let mut small = Vit::new(tiny(224), 1).unwrap();
    small.pos_embed.value =
        Tensor::from_f32(&[1, 197, 8], f.read_f32("real_32x32.input").unwrap()).unwrap();
    let ckpt = TempFile::new("224");
    save_from(&mut small, &ckpt.0, false).unwrap();

    let mut big = Vit::new(tiny(512), 2).unwrap();
    assert_eq!(
        big.pos_embed.value.to_vec_f32().unwrap(),
        sincos_2d(8, 32, 32).unwrap(),
        "random init: the exact sin-cos table"
    );
    let tables = big.pos_tables();
    let file = SafetensorsFile::open(&ckpt.0).unwrap();
    let opts = LoadOptions {
        strict: true,
        ..Default::default()
    };
    let report = load_from_file_interpolating(&mut big, &file, &opts, &tables).unwrap();
    assert!(report.is_exact(), "{:?}", report.problems());
    assert!(report.ignored.is_empty(), "{:?}", report.ignored);
    assert_eq!(
        report.interpolated,
        vec![Interpolated {
            name: "pos_embed".into(),
            from: (14, 14),
            to: (32, 32)
        }]
    );
    assert!(report.interpolated[0].to_string().contains("14×14"));
    assert!(report.loaded.contains(&"pos_embed".to_string()));
    let want = f.read_f32("real_32x32.output").unwrap();
    let got = big.pos_embed.value.to_vec_f32().unwrap();
    assert!(max_rel(&got, &want) < 1e-6);
    for ((n, a), (_, b)) in values(&mut small).iter().zip(values(&mut big).iter()) {
        if n != "pos_embed" {
            assert_eq!(a, b, "{n} copied unchanged");
        }
    }

    // The same size loads as is, with nothing interpolated.
    let mut same = Vit::new(tiny(224), 3).unwrap();
    let tables = same.pos_tables();
    let r = load_from_file_interpolating(&mut same, &file, &opts, &tables).unwrap();
    assert!(r.interpolated.is_empty());
    assert_eq!(
        same.pos_embed.value.to_vec_f32().unwrap(),
        small.pos_embed.value.to_vec_f32().unwrap()
    );
}

/// A table whose grid cannot be told (neither square nor the model's aspect) is a clear error,
/// and a strict load that fails changes nothing.
#[test]
fn an_untellable_grid_is_an_error() {
    let bad = TempFile::new("bad");
    let t = Tensor::from_f32(&[1, 8, 8], vec![0.5; 64]).unwrap(); // 7 grid rows
    save_tensors(&bad.0, [("pos_embed", &t)], &SaveOptions::default()).unwrap();
    let mut vit = Vit::new(tiny(64), 4).unwrap();
    let before = vit.pos_embed.value.to_vec_f32().unwrap();
    let file = SafetensorsFile::open(&bad.0).unwrap();
    let tables = vit.pos_tables();
    let e = load_from_file_interpolating(&mut vit, &file, &LoadOptions::default(), &tables)
        .unwrap_err();
    assert!(format!("{e:#}").contains("7 grid positions"), "{e:#}");
    // Strict: the file lacks everything else, so it fails and nothing changes.
    let ok = Tensor::from_f32(&[1, 5, 8], vec![0.5; 40]).unwrap(); // 2×2 grid
    save_tensors(
        &bad.0,
        [("pos_embed", &ok)],
        &SaveOptions {
            overwrite: true,
            ..Default::default()
        },
    )
    .unwrap();
    let file = SafetensorsFile::open(&bad.0).unwrap();
    let strict = LoadOptions {
        strict: true,
        ..Default::default()
    };
    assert!(load_from_file_interpolating(&mut vit, &file, &strict, &tables).is_err());
    assert_eq!(vit.pos_embed.value.to_vec_f32().unwrap(), before);
    // Not strict: the table is interpolated (a constant stays constant), the rest reported.
    let r =
        load_from_file_interpolating(&mut vit, &file, &LoadOptions::default(), &tables).unwrap();
    assert_eq!(r.interpolated.len(), 1);
    assert!(!r.missing.is_empty());
    let got = vit.pos_embed.value.to_vec_f32().unwrap();
    assert!(got.iter().all(|v| (v - 0.5).abs() < 1e-6), "{got:?}");
}

/// An MAE checkpoint for 64×64 images loads strictly into an MAE for 96×128: both the encoder's
/// and the decoder's tables are interpolated (8×8 → 12×16, a non-square target).
#[test]
fn mae_tables_are_both_interpolated() {
    use seisfuse::models::mae::{Mae, MaeConfig};
    let cfg = MaeConfig::preset("sfm-tiny").unwrap();
    let mut small = Mae::new(cfg.clone(), 1).unwrap();
    let ckpt = TempFile::new("mae64");
    save_from(&mut small, &ckpt.0, false).unwrap();
    let mut big_cfg = cfg;
    big_cfg.encoder = big_cfg.encoder.with_image(96, 128).unwrap();
    let mut big = Mae::new(big_cfg, 2).unwrap();
    let tables = big.pos_tables();
    let file = SafetensorsFile::open(&ckpt.0).unwrap();
    let opts = LoadOptions {
        strict: true,
        ..Default::default()
    };
    let r = load_from_file_interpolating(&mut big, &file, &opts, &tables).unwrap();
    let names: Vec<_> = r
        .interpolated
        .iter()
        .map(|i| (i.name.as_str(), i.from, i.to))
        .collect();
    assert_eq!(
        names,
        vec![
            ("pos_embed", (8, 8), (12, 16)),
            ("decoder_pos_embed", (8, 8), (12, 16))
        ]
    );
    let src = small.decoder_pos_embed.value.to_vec_f32().unwrap();
    let want = interpolate_pos_embed(&src, 32, 1, (8, 8), (12, 16)).unwrap();
    assert_eq!(big.decoder_pos_embed.value.to_vec_f32().unwrap(), want);
}
