//! The SFM heads against PyTorch modules laid out as SFM-Finetune's (tests/fixtures/
//! sfm_heads_torch.safetensors, made by tools/make_sfm_head_fixtures.py): the PyTorch state
//! dicts load strictly under SFM-Finetune's names, and the outputs match in eval mode (running
//! statistics) and train mode (batch statistics), bilinear resampling with align_corners=True.

mod common;
use common::{assert_close, fixtures_dir};
use seisfuse::models::sfm_heads::{SetrMlaConfig, SetrMlaHead, TransUnetConfig, TransUnetHead};
use seisfuse::weights::names::sfm_finetune_load_options;
use seisfuse::weights::{load_from_file, SafetensorsFile};

fn fixture() -> SafetensorsFile {
    SafetensorsFile::open(fixtures_dir().join("sfm_heads_torch.safetensors"))
        .unwrap_or_else(|e| panic!("{e:#} (regenerate with tools/make_sfm_head_fixtures.py)"))
}

fn load(model: &mut dyn seisfuse::nn::Parameters, file: &SafetensorsFile, prefix: &str) {
    let mut opts = sfm_finetune_load_options(true, &[]);
    opts.strip_prefix = Some(prefix.into());
    let r = load_from_file(model, file, &opts).unwrap();
    assert!(r.is_exact(), "{:?}", r.problems());
    assert!(r
        .ignored
        .iter()
        .all(|n| n.ends_with(".num_batches_tracked")));
}

#[test]
fn segmentation_head_matches_pytorch() {
    let f = fixture();
    let cfg = SetrMlaConfig {
        in_channels: 8,
        width: 4,
        classes: 2,
        branch_upsample: 4,
    };
    let mut head = SetrMlaHead::new(cfg, 0).unwrap();
    load(&mut head, &f, "seg.");
    let feats: Vec<_> = (0..4)
        .map(|i| f.tensor(&format!("seg_in.f{i}")).unwrap())
        .collect();
    let feats = [&feats[0], &feats[1], &feats[2], &feats[3]];
    for (mode, training) in [("eval", false), ("train", true)] {
        head.set_training(training);
        let (y, _) = head.forward(feats, (32, 48)).unwrap();
        let want = f.tensor(&format!("seg_out.{mode}")).unwrap();
        assert_eq!(y.shape, want.shape);
        assert_close(
            &format!("segmentation head, {mode}"),
            &y.to_vec_f32().unwrap(),
            &want.to_vec_f32().unwrap(),
            1e-5,
            1e-4,
        );
    }
}

#[test]
fn regression_head_matches_pytorch() {
    let f = fixture();
    let cfg = TransUnetConfig {
        in_channels: 8,
        channels: [8, 6, 4, 4],
        skip_channels: 3,
        image_channels: 1,
        out_channels: 1,
    };
    let mut head = TransUnetHead::new(cfg, 0).unwrap();
    load(&mut head, &f, "reg.");
    let tokens = f.tensor("reg_in.tokens").unwrap();
    let image = f.tensor("reg_in.image").unwrap();
    for (mode, training) in [("eval", false), ("train", true)] {
        head.set_training(training);
        let (y, _) = head.forward(&tokens, &image).unwrap();
        let want = f.tensor(&format!("reg_out.{mode}")).unwrap();
        assert_eq!(y.shape, want.shape);
        assert_close(
            &format!("regression head, {mode}"),
            &y.to_vec_f32().unwrap(),
            &want.to_vec_f32().unwrap(),
            1e-5,
            1e-4,
        );
    }
}
