//! SFM-Finetune checkpoints load strictly into the encoder and our heads: synthetic safetensors
//! files with the names and shapes of the published models' state dicts (random values), as
//! tools/convert_checkpoint.py writes them from a fine-tuned `.pth` ('model').
//!
//! The names are listed here by hand from SFM-Finetune (github.com/shenghanlin/
//! SeismicFoundationModel): `models_Segmentation.py` (`VisionTransformer` with `decoder =
//! VIT_MLAHead(...)`, `MLAHead.head2..head5` each `nn.Sequential(conv, bn, relu, conv, bn,
//! relu)`, `cls` conv3×3, and a `segmentation_head` conv3×3 16→classes never called) and
//! `models_Regression.py` (`decoder = DecoderCup(...)` with `conv_more` and
//! `blocks[s].conv1/conv2`, each a `Conv2dReLU` = `nn.Sequential(conv, bn, relu)`, and
//! `segmentation_head` = `nn.Sequential(conv1×1, Identity)`), plus timm's `head` Linear.

use safetensors::tensor::{Dtype, TensorView};
use seisfuse::models::sfm::{Vit, VitConfig};
use seisfuse::models::sfm_heads::{SetrMlaConfig, SetrMlaHead, TransUnetConfig, TransUnetHead};
use seisfuse::nn::{ParamVisitor, Parameters};
use seisfuse::weights::names::{
    sfm_finetune_load_options, SFM_FINETUNE_REGRESSION_UNUSED, SFM_FINETUNE_SEGMENTATION_UNUSED,
};
use seisfuse::weights::{load_from_file, LoadOptions, SafetensorsFile};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// (name, shape) in state-dict order; `num_batches_tracked` entries are i64 scalars.
type Spec = Vec<(String, Vec<usize>)>;

fn conv_bn(spec: &mut Spec, p: &str, conv: usize, cout: usize, cin: usize) {
    spec.push((format!("{p}{conv}.weight"), vec![cout, cin, 3, 3]));
    for s in ["weight", "bias", "running_mean", "running_var"] {
        spec.push((format!("{p}{}.{s}", conv + 1), vec![cout]));
    }
    spec.push((format!("{p}{}.num_batches_tracked", conv + 1), vec![]));
}

/// timm's VisionTransformer (qkv_bias, no pre_logits) as the fine-tuning model holds it.
fn encoder_spec(c: &VitConfig) -> Spec {
    let d = c.dim;
    let hid = (d as f32 * c.mlp_ratio) as usize;
    let mut s: Spec = vec![
        ("cls_token".into(), vec![1, 1, d]),
        ("pos_embed".into(), vec![1, 1 + c.num_patches(), d]),
        (
            "patch_embed.proj.weight".into(),
            vec![d, c.in_chans, c.patch, c.patch],
        ),
        ("patch_embed.proj.bias".into(), vec![d]),
    ];
    for i in 0..c.depth {
        let b = format!("blocks.{i}.");
        for (n, sh) in [
            ("norm1.weight", vec![d]),
            ("norm1.bias", vec![d]),
            ("attn.qkv.weight", vec![3 * d, d]),
            ("attn.qkv.bias", vec![3 * d]),
            ("attn.proj.weight", vec![d, d]),
            ("attn.proj.bias", vec![d]),
            ("norm2.weight", vec![d]),
            ("norm2.bias", vec![d]),
            ("mlp.fc1.weight", vec![hid, d]),
            ("mlp.fc1.bias", vec![hid]),
            ("mlp.fc2.weight", vec![d, hid]),
            ("mlp.fc2.bias", vec![d]),
        ] {
            s.push((format!("{b}{n}"), sh));
        }
    }
    s.push(("norm.weight".into(), vec![d]));
    s.push(("norm.bias".into(), vec![d]));
    s
}

/// models_Segmentation.py: VIT_MLAHead(mla_channels=dim, mlahead_channels=width).
fn segmentation_spec(dim: usize, width: usize, classes: usize) -> (Spec, Spec) {
    let mut head = Spec::new();
    for k in 2..=5 {
        let p = format!("decoder.mlahead.head{k}.");
        conv_bn(&mut head, &p, 0, width, dim);
        conv_bn(&mut head, &p, 3, width, width);
    }
    head.push(("decoder.cls.weight".into(), vec![classes, 4 * width, 3, 3]));
    head.push(("decoder.cls.bias".into(), vec![classes]));
    let unused = vec![
        ("head.weight".into(), vec![classes, dim]),
        ("head.bias".into(), vec![classes]),
        ("segmentation_head.0.weight".into(), vec![classes, 16, 3, 3]),
        ("segmentation_head.0.bias".into(), vec![classes]),
    ];
    (head, unused)
}

/// models_Regression.py: DecoderCup(in_channels=[dim, c0, c1, c2]) with out_channels
/// [c0, c1, c2, c3], skip_channels [0, 0, 0, skip], conv_more 1→skip; SegmentationHead(c3, 1, 1).
fn regression_spec(dim: usize, ch: [usize; 4], skip: usize) -> (Spec, Spec) {
    let mut head = Spec::new();
    conv_bn(&mut head, "decoder.conv_more.", 0, skip, 1);
    let ins = [dim, ch[0], ch[1], ch[2]];
    for s in 0..4 {
        let extra = if s == 3 { skip } else { 0 };
        conv_bn(
            &mut head,
            &format!("decoder.blocks.{s}.conv1."),
            0,
            ch[s],
            ins[s] + extra,
        );
        conv_bn(
            &mut head,
            &format!("decoder.blocks.{s}.conv2."),
            0,
            ch[s],
            ch[s],
        );
    }
    head.push(("segmentation_head.0.weight".into(), vec![1, ch[3], 1, 1]));
    head.push(("segmentation_head.0.bias".into(), vec![1]));
    let unused = vec![
        ("head.weight".into(), vec![1, dim]),
        ("head.bias".into(), vec![1]),
    ];
    (head, unused)
}

/// Writes the spec with values from a hash of the name (f32), i64 for num_batches_tracked.
/// Returns the f32 values by name.
fn write(path: &Path, spec: &Spec) -> BTreeMap<String, Vec<f32>> {
    let mut bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut vals = BTreeMap::new();
    for (k, (n, sh)) in spec.iter().enumerate() {
        if n.ends_with("num_batches_tracked") {
            bytes.push((
                n.clone(),
                Dtype::I64,
                sh.clone(),
                1234i64.to_le_bytes().to_vec(),
            ));
            continue;
        }
        let count: usize = sh.iter().product();
        let v: Vec<f32> = (0..count)
            .map(|i| (((k * 7919 + i * 104729) % 2003) as f32 / 1001.5 - 1.0) * 0.5)
            .collect();
        bytes.push((
            n.clone(),
            Dtype::F32,
            sh.clone(),
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ));
        vals.insert(n.clone(), v);
    }
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
    vals
}

struct TempFile(PathBuf);
impl TempFile {
    fn new(tag: &str) -> Self {
        TempFile(std::env::temp_dir().join(format!(
            "seisfuse-sfmft-{tag}-{}.safetensors",
            std::process::id()
        )))
    }
}
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The fine-tuning model: the encoder and a head, both at the top level of the state dict.
struct FineTuned<'a, H: Parameters> {
    vit: &'a mut Vit,
    head: &'a mut H,
}
impl<H: Parameters> Parameters for FineTuned<'_, H> {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> anyhow::Result<()> {
        self.vit.visit(prefix, f)?;
        self.head.visit(prefix, f)
    }
}

fn assert_values(m: &mut dyn Parameters, want: &BTreeMap<String, Vec<f32>>) -> usize {
    let mut n = 0;
    m.visit("", &mut |name, p| {
        assert_eq!(&p.value.to_vec_f32()?, &want[name], "{name}");
        n += 1;
        Ok(())
    })
    .unwrap();
    n
}

fn small_vit() -> VitConfig {
    VitConfig {
        img_h: 32,
        img_w: 32,
        in_chans: 1,
        patch: 16,
        dim: 16,
        depth: 4,
        heads: 2,
        mlp_ratio: 4.0,
        eps: 1e-6,
    }
}

#[test]
fn segmentation_head_loads_sfm_finetune_names_strictly() {
    let (dim, width, classes) = (16, 8, 6);
    let (head_spec, unused) = segmentation_spec(dim, width, classes);
    let cfg = SetrMlaConfig {
        in_channels: dim,
        width,
        classes,
        branch_upsample: 4,
    };
    // The head alone (only its counters to skip).
    let f = TempFile::new("seg-head");
    let want = write(&f.0, &head_spec);
    let mut head = SetrMlaHead::new(cfg, 1).unwrap();
    let file = SafetensorsFile::open(&f.0).unwrap();
    let r = load_from_file(&mut head, &file, &sfm_finetune_load_options(true, &[])).unwrap();
    assert!(r.is_exact(), "{:?}", r.problems());
    assert_eq!(r.ignored.len(), 8, "num_batches_tracked of 8 BatchNorms");
    assert_eq!(assert_values(&mut head, &want), r.loaded.len());
    // BatchNorm step counters are skipped by every load, strict ones included.
    let r = load_from_file(
        &mut head,
        &file,
        &LoadOptions {
            strict: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(r.ignored.iter().all(|n| n.ends_with("num_batches_tracked")));

    // The whole fine-tuned model: encoder + head + the tensors its forward never uses.
    let vc = small_vit();
    let mut spec = encoder_spec(&vc);
    spec.extend(head_spec);
    spec.extend(unused);
    let f = TempFile::new("seg-model");
    let want = write(&f.0, &spec);
    let mut vit = Vit::new(vc, 2).unwrap();
    let mut head = SetrMlaHead::new(cfg, 3).unwrap();
    let mut model = FineTuned {
        vit: &mut vit,
        head: &mut head,
    };
    let file = SafetensorsFile::open(&f.0).unwrap();
    let opts = sfm_finetune_load_options(true, SFM_FINETUNE_SEGMENTATION_UNUSED);
    let r = load_from_file(&mut model, &file, &opts).unwrap();
    assert!(r.is_exact(), "{:?}", r.problems());
    assert_eq!(r.ignored.len(), 8 + 4, "{:?}", r.ignored);
    assert_eq!(assert_values(&mut model, &want), r.loaded.len());
}

#[test]
fn regression_head_loads_sfm_finetune_names_strictly() {
    let (dim, ch, skip) = (16, [12, 8, 6, 6], 4);
    let (head_spec, unused) = regression_spec(dim, ch, skip);
    let cfg = TransUnetConfig {
        in_channels: dim,
        channels: ch,
        skip_channels: skip,
        image_channels: 1,
        out_channels: 1,
    };
    let f = TempFile::new("reg-head");
    let want = write(&f.0, &head_spec);
    let mut head = TransUnetHead::new(cfg, 1).unwrap();
    let file = SafetensorsFile::open(&f.0).unwrap();
    let r = load_from_file(&mut head, &file, &sfm_finetune_load_options(true, &[])).unwrap();
    assert!(r.is_exact(), "{:?}", r.problems());
    assert_eq!(r.ignored.len(), 9, "num_batches_tracked of 9 BatchNorms");
    assert_eq!(assert_values(&mut head, &want), r.loaded.len());

    let vc = small_vit();
    let mut spec = encoder_spec(&vc);
    spec.extend(head_spec);
    spec.extend(unused);
    let f = TempFile::new("reg-model");
    let want = write(&f.0, &spec);
    let mut vit = Vit::new(vc, 2).unwrap();
    let mut head = TransUnetHead::new(cfg, 3).unwrap();
    let mut model = FineTuned {
        vit: &mut vit,
        head: &mut head,
    };
    let file = SafetensorsFile::open(&f.0).unwrap();
    let opts = sfm_finetune_load_options(true, SFM_FINETUNE_REGRESSION_UNUSED);
    let r = load_from_file(&mut model, &file, &opts).unwrap();
    assert!(r.is_exact(), "{:?}", r.problems());
    assert_eq!(r.ignored.len(), 9 + 2, "{:?}", r.ignored);
    assert_eq!(assert_values(&mut model, &want), r.loaded.len());

    // SFM's shapes: a head for the ViT-Base width has SFM's channel counts.
    let sfm = TransUnetConfig::sfm(768);
    let (spec, _) = regression_spec(768, sfm.channels, sfm.skip_channels);
    let mut head = TransUnetHead::new(sfm, 0).unwrap();
    let mut shapes = BTreeMap::new();
    head.visit("", &mut |n, p| {
        shapes.insert(n.to_string(), p.value.shape.clone());
        Ok(())
    })
    .unwrap();
    let published: BTreeMap<String, Vec<usize>> = spec
        .into_iter()
        .filter(|(n, _)| !n.ends_with("num_batches_tracked"))
        .collect();
    assert_eq!(shapes, published);
}
