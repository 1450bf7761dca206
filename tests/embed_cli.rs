//! `seisfuse embed` end to end: weights saved from a model, images from `.npy`, features out.

mod common;
use seisfuse::models::sfm::{normalize_images, Vit, VitConfig};
use seisfuse::Tensor;
use std::process::Command;

fn exe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seisfuse"))
}

#[test]
fn embed_writes_the_features_of_the_saved_encoder() {
    let dir = std::env::temp_dir().join(format!("seisfuse-embed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // weights of an sfm-tiny encoder (64×64 images)
    let mut vit = Vit::new(VitConfig::preset("sfm-tiny").unwrap(), 11).unwrap();
    let w = dir.join("tiny.safetensors");
    seisfuse::weights::save_from(&mut vit, &w, false).unwrap();
    // three images of 64×64
    let mut s = seisfuse::backend::cpu::philox::PhiloxStream::new(5, 0, 0);
    let raw: Vec<f32> = (0..3 * 64 * 64).map(|_| s.next_f32() * 3.0 + 1.0).collect();
    let input = dir.join("images.npy");
    seisfuse::data::npy::write(&input, &[3, 64, 64], &raw).unwrap();
    let out = dir.join("emb.npy");
    let st = exe()
        .args([
            "--device", "cpu", "embed", "--model", "sfm-tiny", "--strict", "--pool", "cls",
            "--batch", "2",
        ])
        .arg("--weights")
        .arg(&w)
        .arg("--input")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let got = seisfuse::data::npy::read_f32_tensor(&out).unwrap();
    assert_eq!(got.shape, vec![3, 64]);
    // the same features in process
    let mut norm = raw.clone();
    normalize_images(&mut norm, 64 * 64);
    let (tokens, _) = vit
        .forward(&Tensor::from_f32(&[3, 1, 64, 64], norm).unwrap(), None)
        .unwrap();
    let t = tokens.to_vec_f32().unwrap();
    let want: Vec<f32> = (0..3)
        .flat_map(|b| t[b * 65 * 64..b * 65 * 64 + 64].to_vec())
        .collect();
    let g = got.to_vec_f32().unwrap();
    for (a, b) in g.iter().zip(&want) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    // bf16 inference: the same features within bf16 accuracy
    let out16 = dir.join("emb16.npy");
    let st = exe()
        .args([
            "--device",
            "cpu",
            "embed",
            "--model",
            "sfm-tiny",
            "--pool",
            "mean",
            "--precision",
            "bf16",
        ])
        .arg("--weights")
        .arg(&w)
        .arg("--input")
        .arg(&input)
        .arg("--out")
        .arg(&out16)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let g16 = seisfuse::data::npy::read_f32_tensor(&out16)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let mut mean = Vec::with_capacity(3 * 64);
    for b in 0..3 {
        for j in 0..64 {
            mean.push((1..65).map(|r| t[b * 65 * 64 + r * 64 + j]).sum::<f32>() / 64.0);
        }
    }
    let e = common::rel_err(&g16, &mean);
    assert!(e < 2e-2, "bf16 mean features off by {e}");
    // refuses to overwrite; a wrong model name and a wrong input shape are clear errors
    let again = exe()
        .args([
            "--device",
            "cpu",
            "embed",
            "--model",
            "sfm-tiny",
            "--random-init",
            "--input",
        ])
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let bad = exe()
        .args([
            "--device",
            "cpu",
            "embed",
            "--model",
            "vit-huge",
            "--random-init",
            "--input",
        ])
        .arg(&input)
        .arg("--out")
        .arg(dir.join("x.npy"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    // Images of another size: the checkpoint's 8×8 position table is interpolated to 12×12
    // (bicubic, as SFM-Finetune does), strictly, and the loader says so.
    let raw96: Vec<f32> = (0..96 * 96).map(|i| (i as f32 * 0.01).sin()).collect();
    let in96 = dir.join("images96.npy");
    seisfuse::data::npy::write(&in96, &[1, 96, 96], &raw96).unwrap();
    let st = exe()
        .args([
            "--device", "cpu", "embed", "--model", "sfm-tiny", "--strict", "--pool", "cls",
        ])
        .arg("--weights")
        .arg(&w)
        .arg("--input")
        .arg(&in96)
        .arg("--out")
        .arg(dir.join("emb96.npy"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(st.status.success(), "{err}");
    assert!(
        err.contains("pos_embed: the checkpoint's 8×8 grid interpolated to 12×12"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn embed_seislm_waveforms_mean_pools_the_frames() {
    use seisfuse::models::seislm::{Seislm, SeislmConfig};
    let dir = std::env::temp_dir().join(format!("seisfuse-embed-w-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = SeislmConfig::preset("seislm-tiny").unwrap();
    let mut m = Seislm::new(cfg.clone(), 4).unwrap();
    let w = dir.join("seislm.safetensors");
    seisfuse::weights::save_from(&mut m, &w, false).unwrap();
    let mut s = seisfuse::backend::cpu::philox::PhiloxStream::new(8, 0, 0);
    let t = 401;
    let raw: Vec<f32> = (0..2 * 3 * t)
        .map(|_| s.next_normal() * 5.0 + 2.0)
        .collect();
    let input = dir.join("w.npy");
    seisfuse::data::npy::write(&input, &[2, 3, t], &raw).unwrap();
    let out = dir.join("e.npy");
    let st = exe()
        .args([
            "--device",
            "cpu",
            "embed",
            "--model",
            "seislm-tiny",
            "--strict",
            "--pool",
            "mean",
            "--weights",
        ])
        .arg(&w)
        .arg("--input")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let got = seisfuse::data::npy::read_f32_tensor(&out)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let mut norm = raw.clone();
    for ch in norm.chunks_mut(t) {
        seisfuse::data::transforms::zscore_in_place(ch, 1e-6);
    }
    let (o, _) = m
        .forward(&Tensor::from_f32(&[2, 3, t], norm).unwrap(), None)
        .unwrap();
    let h = o.last_hidden_state.to_vec_f32().unwrap();
    let frames = cfg.frames(t).unwrap();
    for b in 0..2 {
        for k in 0..cfg.hidden {
            let want: f32 = (0..frames)
                .map(|f| h[(b * frames + f) * cfg.hidden + k])
                .sum::<f32>()
                / frames as f32;
            let g = got[b * cfg.hidden + k];
            assert!((g - want).abs() < 1e-4, "{g} vs {want}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
