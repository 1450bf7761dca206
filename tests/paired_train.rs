//! The paired image+waveform dataset written by `seisfuse synth paired` feeds the encoders:
//! MAE training on its sections lowers the masked loss, and its waveforms run through SeisLM.

use seisfuse::models::mae::{Mae, MaeConfig, Masking};
use seisfuse::models::seislm::{Seislm, SeislmConfig};
use seisfuse::models::sfm::{normalize_images, VitConfig};
use seisfuse::ops::AdamWConfig;
use seisfuse::train::AdamW;
use seisfuse::Tensor;

#[test]
fn paired_files_train_the_image_encoder_and_feed_seislm() {
    let dir = std::env::temp_dir().join(format!("seisfuse-paired-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_seisfuse"))
        .args([
            "synth",
            "paired",
            "--n",
            "16",
            "--size",
            "32",
            "--samples",
            "601",
            "--seed",
            "3",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let images = seisfuse::data::npy::read_f32_tensor(dir.join("images.npy")).unwrap();
    let waves = seisfuse::data::npy::read_f32_tensor(dir.join("waveforms.npy")).unwrap();
    assert_eq!(images.shape[0], 16);
    assert_eq!(waves.shape, vec![16, 3, 601]);

    // MAE on the paired sections
    let enc = VitConfig {
        img_h: 32,
        img_w: 32,
        in_chans: 1,
        patch: 8,
        dim: 32,
        depth: 2,
        heads: 2,
        mlp_ratio: 2.0,
        eps: 1e-6,
    };
    let cfg = MaeConfig {
        encoder: enc,
        decoder_dim: 16,
        decoder_depth: 1,
        decoder_heads: 2,
        mask_ratio: 0.5,
        norm_pix_loss: false,
    };
    let mut mae = Mae::new(cfg.clone(), 1).unwrap();
    let mut store = seisfuse::nn::ParamStore::pack(&mut mae, &seisfuse::Device::Cpu).unwrap();
    let mut px = images.to_vec_f32().unwrap();
    normalize_images(&mut px, 32 * 32);
    let imgs = Tensor::from_f32(&[16, 1, 32, 32], px).unwrap();
    let mut opt = AdamW::new(AdamWConfig {
        lr: 2e-3,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.0,
    });
    let masking = Masking::random(2, 0, 16, 16, cfg.len_keep()).unwrap();
    let mut losses = Vec::new();
    for _ in 0..60 {
        let out = mae.forward(&imgs, masking.clone()).unwrap();
        store.zero_grad().unwrap();
        mae.backward(&out.cache, &mut store.grads).unwrap();
        opt.step(&mut store, 2e-3).unwrap();
        losses.push(out.loss);
    }
    let (a, b) = (
        losses[..5].iter().sum::<f32>() / 5.0,
        losses[55..].iter().sum::<f32>() / 5.0,
    );
    println!("MAE on paired sections: {a:.3} → {b:.3}");
    assert!(
        b < 0.7 * a,
        "the masked loss falls on the paired sections: {a} → {b}"
    );

    // the waveforms run through the SeisLM encoder
    let m = Seislm::new(SeislmConfig::preset("seislm-tiny").unwrap(), 0).unwrap();
    let (o, _) = m.forward(&waves, None).unwrap();
    assert!(o
        .last_hidden_state
        .to_vec_f32()
        .unwrap()
        .iter()
        .all(|v| v.is_finite()));
    let _ = std::fs::remove_dir_all(&dir);
}
