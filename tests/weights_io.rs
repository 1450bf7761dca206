//! safetensors load/save: round trips, dtype conversion, name matching, bad files.

use half::{bf16, f16};
use safetensors::tensor::{Dtype, TensorView};
use seisfuse::nn::{Param, ParamVisitor, Parameters};
use seisfuse::weights::{
    load_into, load_into_with, save_from, save_tensors, LoadOptions, SafetensorsFile, SaveOptions,
};
use seisfuse::{DType, Tensor};
use std::path::PathBuf;

/// A tiny model: a linear layer, a norm, and a weight-normed conv named either way.
struct Tiny {
    w: Param,
    b: Param,
    norm_w: Param,
    pos: Param,
    g: Param,
    v: Param,
    parametrized: bool,
}

fn seq(n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.37 - 1.0) * scale).collect()
}

impl Tiny {
    fn new(scale: f32, parametrized: bool) -> Self {
        let p = |shape: &[usize], s: f32| {
            Param::new(Tensor::from_f32(shape, seq(shape.iter().product(), s)).unwrap()).unwrap()
        };
        Tiny {
            w: p(&[4, 3], scale),
            b: p(&[4], scale),
            norm_w: p(&[4], 2.0 * scale),
            pos: Param::fixed(Tensor::from_f32(&[1, 2, 4], seq(8, scale)).unwrap()).unwrap(),
            g: p(&[1, 1, 5], scale),
            v: p(&[4, 2, 5], scale),
            parametrized,
        }
    }
}

impl Parameters for Tiny {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> anyhow::Result<()> {
        f(&format!("{prefix}embed.weight"), &mut self.w)?;
        f(&format!("{prefix}embed.bias"), &mut self.b)?;
        f(&format!("{prefix}blocks.0.norm.weight"), &mut self.norm_w)?;
        f(&format!("{prefix}pos_embed"), &mut self.pos)?;
        let (g, v) = if self.parametrized {
            (
                "parametrizations.weight.original0",
                "parametrizations.weight.original1",
            )
        } else {
            ("weight_g", "weight_v")
        };
        f(&format!("{prefix}pos_conv.{g}"), &mut self.g)?;
        f(&format!("{prefix}pos_conv.{v}"), &mut self.v)?;
        Ok(())
    }
}

fn values(m: &mut Tiny) -> Vec<(String, Vec<f32>)> {
    let mut out = Vec::new();
    m.visit("", &mut |n, p| {
        out.push((n.to_string(), p.value.to_vec_f32()?));
        Ok(())
    })
    .unwrap();
    out
}

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("seisfuse-weights-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn err<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => format!("{e:#}"),
    }
}

/// Writes raw (name, dtype, shape, bytes) entries with the safetensors crate itself.
fn write_raw(path: &std::path::Path, entries: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, TensorView)> = entries
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let bytes = safetensors::serialize(views, None).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn save_then_load_round_trip() {
    let dir = TempDir::new("roundtrip");
    let path = dir.file("tiny.safetensors");
    let mut a = Tiny::new(1.0, false);
    save_from(&mut a, &path, false).unwrap();
    let mut b = Tiny::new(0.0, false);
    let report = load_into(&mut b, &path, true).unwrap();
    assert!(report.is_exact());
    assert_eq!(report.loaded.len(), 6);
    assert!(report.converted.is_empty());
    assert_eq!(values(&mut a), values(&mut b));
    // Trainable flags are the model's, not the file's.
    assert!(!b.pos.trainable);

    let f = SafetensorsFile::open(&path).unwrap();
    assert_eq!(f.len(), 6);
    assert!(f
        .metadata()
        .get("producer")
        .unwrap()
        .starts_with("seisfuse"));
    let t = f.tensor("embed.weight").unwrap();
    assert_eq!((t.shape.clone(), t.dtype), (vec![4, 3], DType::F32));
}

#[test]
fn refuses_to_overwrite_unless_asked() {
    let dir = TempDir::new("overwrite");
    let path = dir.file("w.safetensors");
    let mut a = Tiny::new(1.0, false);
    save_from(&mut a, &path, false).unwrap();
    let e = err(save_from(&mut a, &path, false));
    assert!(
        e.contains("refusing to overwrite") && e.contains("w.safetensors"),
        "{e}"
    );
    let mut c = Tiny::new(3.0, false);
    save_from(&mut c, &path, true).unwrap();
    let mut d = Tiny::new(0.0, false);
    load_into(&mut d, &path, true).unwrap();
    assert_eq!(values(&mut c), values(&mut d));
    // No temporary file left behind.
    let left: Vec<_> = std::fs::read_dir(&dir.0).unwrap().collect();
    assert_eq!(left.len(), 1);
}

#[test]
fn save_tensors_keeps_dtypes_and_metadata() {
    let dir = TempDir::new("dtypes");
    let path = dir.file("t.safetensors");
    let f = Tensor::from_f32(&[2], vec![1.5, -2.0]).unwrap();
    let h = Tensor::from_bf16(&[3], vec![bf16::from_f32(0.5); 3]).unwrap();
    let i = Tensor::from_i32(&[2, 1], vec![7, -3]).unwrap();
    let mut opts = SaveOptions::default();
    opts.metadata.insert("torch".into(), "2.11".into());
    save_tensors(&path, [("a", &f), ("b", &h), ("c", &i)], &opts).unwrap();
    let file = SafetensorsFile::open(&path).unwrap();
    assert_eq!(
        file.metadata().get("torch").map(String::as_str),
        Some("2.11")
    );
    assert_eq!(
        file.tensor("a").unwrap().to_vec_f32().unwrap(),
        vec![1.5, -2.0]
    );
    assert_eq!(file.tensor("b").unwrap().dtype, DType::BF16);
    assert_eq!(file.tensor("c").unwrap().to_vec_i32().unwrap(), vec![7, -3]);
    assert!(err(save_tensors(
        dir.file("u.safetensors"),
        [("a", &f), ("a", &f)],
        &opts
    ))
    .contains("given twice"));
}

#[test]
fn bf16_f16_f64_and_int_inputs_convert() {
    let dir = TempDir::new("convert");
    let path = dir.file("mixed.safetensors");
    let w: Vec<f32> = seq(12, 1.0);
    let bf: Vec<u8> = w
        .iter()
        .flat_map(|x| bf16::from_f32(*x).to_bits().to_le_bytes())
        .collect();
    let hf: Vec<u8> = seq(4, 1.0)
        .iter()
        .flat_map(|x| f16::from_f32(*x).to_bits().to_le_bytes())
        .collect();
    let df: Vec<u8> = seq(4, 2.0)
        .iter()
        .flat_map(|x| (*x as f64).to_le_bytes())
        .collect();
    let f32b = |v: Vec<f32>| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let i64b: Vec<u8> = [5i64, -6].iter().flat_map(|x| x.to_le_bytes()).collect();
    write_raw(
        &path,
        &[
            ("embed.weight", Dtype::BF16, vec![4, 3], bf),
            ("embed.bias", Dtype::F16, vec![4], hf),
            ("blocks.0.norm.weight", Dtype::F64, vec![4], df),
            ("pos_embed", Dtype::F32, vec![1, 2, 4], f32b(seq(8, 1.0))),
            (
                "pos_conv.weight_g",
                Dtype::F32,
                vec![1, 1, 5],
                f32b(seq(5, 1.0)),
            ),
            (
                "pos_conv.weight_v",
                Dtype::F32,
                vec![4, 2, 5],
                f32b(seq(40, 1.0)),
            ),
            ("num_batches_tracked", Dtype::I64, vec![2], i64b),
        ],
    );
    let mut m = Tiny::new(0.0, false);
    let r = load_into(&mut m, &path, false).unwrap();
    assert_eq!(r.loaded.len(), 6);
    assert_eq!(r.unexpected, vec!["num_batches_tracked".to_string()]);
    let conv: Vec<_> = r
        .converted
        .iter()
        .map(|(n, d)| format!("{n}:{d}"))
        .collect();
    assert!(conv.contains(&"embed.weight:bf16".to_string()), "{conv:?}");
    assert!(conv.contains(&"embed.bias:f16".to_string()), "{conv:?}");
    assert!(
        conv.contains(&"blocks.0.norm.weight:f64".to_string()),
        "{conv:?}"
    );
    let got = m.w.value.to_vec_f32().unwrap();
    for (g, x) in got.iter().zip(&w) {
        assert_eq!(*g, bf16::from_f32(*x).to_f32());
    }
    assert_eq!(m.w.value.dtype, DType::F32);
    let b = m.b.value.to_vec_f32().unwrap();
    for (g, x) in b.iter().zip(seq(4, 1.0)) {
        assert_eq!(*g, f16::from_f32(x).to_f32());
    }
    assert_eq!(m.norm_w.value.to_vec_f32().unwrap(), seq(4, 2.0));

    let file = SafetensorsFile::open(&path).unwrap();
    let t = file.tensor("num_batches_tracked").unwrap();
    assert_eq!(
        (t.dtype, t.to_vec_i32().unwrap()),
        (DType::I32, vec![5, -6])
    );
    assert_eq!(file.tensor("embed.bias").unwrap().dtype, DType::F32);
    assert_eq!(file.tensor("embed.weight").unwrap().dtype, DType::BF16);
}

#[test]
fn integer_tensor_for_a_parameter_is_reported() {
    let dir = TempDir::new("intparam");
    let path = dir.file("w.safetensors");
    let mut a = Tiny::new(1.0, false);
    save_from(&mut a, &path, false).unwrap();
    // Replace embed.bias by an i32 tensor.
    let f = SafetensorsFile::open(&path).unwrap();
    let mut all = f.load_all().unwrap();
    drop(f);
    all.insert(
        "embed.bias".into(),
        Tensor::from_i32(&[4], vec![1, 2, 3, 4]).unwrap(),
    );
    let path2 = dir.file("w2.safetensors");
    save_tensors(
        &path2,
        all.iter().map(|(n, t)| (n.as_str(), t)),
        &SaveOptions::default(),
    )
    .unwrap();
    let e = err(load_into(&mut Tiny::new(0.0, false), &path2, true));
    assert!(e.contains("embed.bias") && e.contains("i32"), "{e}");
    let r = load_into(&mut Tiny::new(0.0, false), &path2, false).unwrap();
    assert_eq!(
        r.bad_dtypes,
        vec![("embed.bias".to_string(), "i32".to_string())]
    );
    assert_eq!(r.loaded.len(), 5);
}

#[test]
fn missing_and_unexpected_by_name() {
    let dir = TempDir::new("names");
    let path = dir.file("w.safetensors");
    let mut a = Tiny::new(1.0, false);
    save_from(&mut a, &path, false).unwrap();
    let mut all = SafetensorsFile::open(&path).unwrap().load_all().unwrap();
    let bias = all.remove("embed.bias").unwrap();
    all.insert("head.bias".into(), bias);
    let p2 = dir.file("w2.safetensors");
    save_tensors(
        &p2,
        all.iter().map(|(n, t)| (n.as_str(), t)),
        &SaveOptions::default(),
    )
    .unwrap();

    let mut strict = Tiny::new(0.0, false);
    let before = values(&mut strict);
    let e = err(load_into(&mut strict, &p2, true));
    assert!(e.contains("missing: embed.bias"), "{e}");
    assert!(e.contains("unexpected: head.bias"), "{e}");
    assert!(e.contains("w2.safetensors"), "{e}");
    // A strict failure changes nothing.
    assert_eq!(values(&mut strict), before);

    let mut lax = Tiny::new(0.0, false);
    let r = load_into(&mut lax, &p2, false).unwrap();
    assert_eq!(r.missing, vec!["embed.bias".to_string()]);
    assert_eq!(r.unexpected, vec!["head.bias".to_string()]);
    assert_eq!(r.loaded.len(), 5);
    assert_eq!(r.problems().len(), 2);
    assert_eq!(
        lax.w.value.to_vec_f32().unwrap(),
        a.w.value.to_vec_f32().unwrap()
    );
    assert_eq!(lax.b.value.to_vec_f32().unwrap(), vec![0.0; 4]);
}

#[test]
fn shape_mismatch_by_name() {
    let dir = TempDir::new("shape");
    let path = dir.file("w.safetensors");
    let mut a = Tiny::new(1.0, false);
    save_from(&mut a, &path, false).unwrap();
    let mut all = SafetensorsFile::open(&path).unwrap().load_all().unwrap();
    all.insert(
        "embed.weight".into(),
        Tensor::from_f32(&[3, 4], seq(12, 1.0)).unwrap(),
    );
    let p2 = dir.file("w2.safetensors");
    save_tensors(
        &p2,
        all.iter().map(|(n, t)| (n.as_str(), t)),
        &SaveOptions::default(),
    )
    .unwrap();
    let e = err(load_into(&mut Tiny::new(0.0, false), &p2, true));
    assert!(
        e.contains("shape mismatch: embed.weight expects [4, 3], file has [3, 4]"),
        "{e}"
    );
    let mut m = Tiny::new(0.0, false);
    let r = load_into(&mut m, &p2, false).unwrap();
    assert_eq!(r.shape_mismatches.len(), 1);
    assert_eq!(r.shape_mismatches[0].name, "embed.weight");
    assert_eq!(m.w.value.to_vec_f32().unwrap(), vec![0.0; 12]);
    assert_eq!(r.loaded.len(), 5);
}

#[test]
fn prefix_stripping_and_weight_norm_names() {
    let dir = TempDir::new("prefix");
    // Model spelled with weight_g/weight_v, saved; then renamed as a Lightning checkpoint with
    // parametrizations and a quantizer outside the prefix.
    let path = dir.file("plain.safetensors");
    let mut a = Tiny::new(1.0, false);
    save_from(&mut a, &path, false).unwrap();
    let all = SafetensorsFile::open(&path).unwrap().load_all().unwrap();
    let mut renamed: Vec<(String, Tensor)> = Vec::new();
    for (n, t) in all {
        let n = n
            .replace(
                "pos_conv.weight_g",
                "pos_conv.parametrizations.weight.original0",
            )
            .replace(
                "pos_conv.weight_v",
                "pos_conv.parametrizations.weight.original1",
            );
        renamed.push((format!("model.wav2vec2.{n}"), t));
    }
    renamed.push((
        "model.quantizer.codevectors".into(),
        Tensor::from_f32(&[1, 2, 2], vec![0.0; 4]).unwrap(),
    ));
    let ckpt = dir.file("lightning.safetensors");
    save_tensors(
        &ckpt,
        renamed.iter().map(|(n, t)| (n.as_str(), t)),
        &SaveOptions::default(),
    )
    .unwrap();

    // Without stripping: everything is missing or unexpected.
    let e = err(load_into(&mut Tiny::new(0.0, false), &ckpt, true));
    assert!(e.contains("missing: embed.weight"), "{e}");
    assert!(e.contains("unexpected: model.wav2vec2.embed.weight"), "{e}");

    let opts = LoadOptions {
        strict: true,
        strip_prefix: Some("model.wav2vec2.".into()),
        ..Default::default()
    };
    // weight_g/weight_v model ← parametrizations file.
    let mut b = Tiny::new(0.0, false);
    let r = load_into_with(&mut b, &ckpt, &opts).unwrap();
    assert_eq!(r.loaded.len(), 6);
    assert_eq!(
        r.outside_prefix,
        vec!["model.quantizer.codevectors".to_string()]
    );
    assert_eq!(values(&mut a), values(&mut b));

    // parametrizations model ← weight_g/weight_v file.
    let mut c = Tiny::new(0.0, true);
    load_into(&mut c, &path, true).unwrap();
    assert_eq!(
        c.g.value.to_vec_f32().unwrap(),
        a.g.value.to_vec_f32().unwrap()
    );
    assert_eq!(
        c.v.value.to_vec_f32().unwrap(),
        a.v.value.to_vec_f32().unwrap()
    );
}

#[test]
fn bad_files_are_errors_naming_the_file() {
    let dir = TempDir::new("bad");
    let good = dir.file("good.safetensors");
    save_from(&mut Tiny::new(1.0, false), &good, false).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let missing = dir.file("nope.safetensors");
    let e = err(SafetensorsFile::open(&missing));
    assert!(e.contains("nope.safetensors"), "{e}");

    let empty = dir.file("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    let e = err(SafetensorsFile::open(&empty));
    assert!(
        e.contains("empty.safetensors") && e.contains("0 bytes"),
        "{e}"
    );

    let truncated = dir.file("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    let e = err(load_into(&mut Tiny::new(0.0, false), &truncated, false));
    assert!(e.contains("truncated.safetensors"), "{e}");

    let header_cut = dir.file("header_cut.safetensors");
    std::fs::write(&header_cut, &bytes[..40]).unwrap();
    let e = err(SafetensorsFile::open(&header_cut));
    assert!(
        e.contains("header_cut.safetensors") && e.contains("truncated"),
        "{e}"
    );

    let garbage = dir.file("garbage.safetensors");
    let mut g = bytes.clone();
    for b in g.iter_mut().skip(8).take(30) {
        *b = 0xff;
    }
    std::fs::write(&garbage, &g).unwrap();
    let e = err(SafetensorsFile::open(&garbage));
    assert!(e.contains("garbage.safetensors"), "{e}");

    let pth = dir.file("model.pth");
    std::fs::write(&pth, b"PK\x03\x04 this is a zip-based torch checkpoint").unwrap();
    let e = err(SafetensorsFile::open(&pth));
    assert!(e.contains("model.pth"), "{e}");

    let f = SafetensorsFile::open(&good).unwrap();
    let e = err(f.tensor("no.such.tensor"));
    assert!(
        e.contains("no.such.tensor") && e.contains("good.safetensors"),
        "{e}"
    );
}

#[test]
fn inspect_command_lists_tensors_and_preset() {
    let bin = env!("CARGO_BIN_EXE_seisfuse");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/vit_tiny.safetensors"
    );
    let out = std::process::Command::new(bin)
        .args(["weights", "inspect", fixture])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("param.patch_embed.proj.weight"), "{text}");
    assert!(text.contains("[36, 1, 8, 8]"), "{text}");
    assert!(text.contains("tensors: 65"), "{text}");
    assert!(text.contains("SFM ViT: dim 36, depth 2"), "{text}");

    let dir = TempDir::new("inspect");
    let bad = dir.file("bad.safetensors");
    std::fs::write(&bad, b"not a safetensors file at all").unwrap();
    let out = std::process::Command::new(bin)
        .args(["weights", "inspect"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.safetensors"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
