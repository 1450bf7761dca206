//! The SFM heads learn: with fixed random "features" as input, the segmentation and
//! classification heads overfit a tiny synthetic target on the CPU in a few dozen AdamW steps;
//! the regression (denoising) head, trained on noisy images, must beat returning its input
//! unchanged on held-out images.

mod common;
use common::*;
use seisfuse::models::sfm_heads::{
    ClassificationHead, SetrMlaConfig, SetrMlaHead, TransUnetConfig, TransUnetHead,
};
use seisfuse::nn::{ParamStore, Parameters};
use seisfuse::ops::{self, AdamWConfig};
use seisfuse::{Device, Tensor};

/// AdamW (no weight decay) over a model's parameter store, zeroing the gradients after each
/// step.
struct AdamW {
    opt: seisfuse::train::AdamW,
    lr: f32,
}

impl AdamW {
    fn new(lr: f32) -> Self {
        AdamW {
            opt: seisfuse::train::AdamW::new(AdamWConfig {
                lr,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
            }),
            lr,
        }
    }
    fn step(&mut self, store: &mut ParamStore) {
        self.opt.step(store, self.lr).unwrap();
        store.zero_grad().unwrap();
    }
}

fn pixel_accuracy(logits: &Tensor, targets: &[i32]) -> f32 {
    let (n, k, h, w) = (
        logits.shape[0],
        logits.shape[1],
        logits.shape[2],
        logits.shape[3],
    );
    let l = logits.to_vec_f32().unwrap();
    let mut right = 0;
    for b in 0..n {
        for p in 0..h * w {
            let best = (0..k)
                .max_by(|&i, &j| l[(b * k + i) * h * w + p].total_cmp(&l[(b * k + j) * h * w + p]))
                .unwrap();
            right += (best as i32 == targets[b * h * w + p]) as usize;
        }
    }
    right as f32 / (n * h * w) as f32
}

#[test]
fn segmentation_head_overfits_a_tiny_label_map() {
    let start = std::time::Instant::now();
    let (b, c, g, classes, img) = (2usize, 16usize, 4usize, 3usize, 16usize);
    let cfg = SetrMlaConfig {
        in_channels: c,
        width: 8,
        classes,
        branch_upsample: 4,
    };
    let mut head = SetrMlaHead::new(cfg, 7).unwrap();
    let mut store = pack(&mut head, &Device::Cpu);
    let names = head.param_shapes().unwrap();
    assert!(names
        .iter()
        .any(|(n, _)| n == "decoder.mlahead.head5.4.running_var"));
    assert!(names
        .iter()
        .any(|(n, s)| n == "decoder.cls.weight" && s == &vec![classes, 32, 3, 3]));
    let feats: Vec<Tensor> = (0..4)
        .map(|i| rand_tensor(&[b, c, g, g], 1000 + i))
        .collect();
    // Blobs of three classes, different in each image.
    let targets: Vec<i32> = (0..b * img * img)
        .map(|i| {
            let (n, y, x) = (i / (img * img), (i / img) % img, i % img);
            let r = ((y as f32 - 7.5).powi(2) + (x as f32 - 4.0 - 6.0 * n as f32).powi(2)).sqrt();
            if r < 4.0 {
                1
            } else if y > 11 {
                2
            } else {
                0
            }
        })
        .collect();
    let tt = Tensor::from_i32(&[b, img, img], targets.clone()).unwrap();
    let mut opt = AdamW::new(1e-2);
    let (mut first, mut last) = (None, (0.0, 0.0));
    for step in 0..40 {
        let (logits, cache) = head
            .forward([&feats[0], &feats[1], &feats[2], &feats[3]], (img, img))
            .unwrap();
        assert_eq!(logits.shape, vec![b, classes, img, img]);
        let l = ops::pixel_cross_entropy(&logits, &tt).unwrap();
        assert!(l.loss.is_finite(), "step {step}: loss {}", l.loss);
        let acc = pixel_accuracy(&logits, &targets);
        first.get_or_insert((l.loss, acc));
        last = (l.loss, acc);
        let dl = ops::pixel_cross_entropy_backward(&logits, &tt, l.count, 1.0).unwrap();
        let dfeats = head.backward(&cache, &dl, &mut store.grads).unwrap();
        assert!(dfeats.iter().all(|d| d.shape == vec![b, c, g, g]));
        opt.step(&mut store);
    }
    let first = first.unwrap();
    println!(
        "segmentation: cross-entropy {:.4} → {:.4}, pixel accuracy {:.3} → {:.3} in {:.1?}",
        first.0,
        last.0,
        first.1,
        last.1,
        start.elapsed()
    );
    assert!(
        last.0 < 0.3 * first.0,
        "cross-entropy {} → {}",
        first.0,
        last.0
    );
    assert!(
        last.1 > 0.9 && last.1 > first.1 + 0.3,
        "accuracy {} → {}",
        first.1,
        last.1
    );
    // Eval mode (running statistics) predicts much like train mode after training.
    head.set_training(false);
    let (logits, _) = head
        .forward([&feats[0], &feats[1], &feats[2], &feats[3]], (img, img))
        .unwrap();
    let eval_acc = pixel_accuracy(&logits, &targets);
    println!("segmentation: eval-mode pixel accuracy {eval_acc:.3}");
    assert!(eval_acc > 0.8, "eval-mode accuracy {eval_acc}");
}

#[test]
fn regression_head_denoises_held_out_images_better_than_the_identity() {
    const STEPS: u64 = 200;
    let start = std::time::Instant::now();
    let (b, c, g) = (2usize, 16usize, 2usize);
    let img = 16 * g;
    let cfg = TransUnetConfig {
        in_channels: c,
        channels: [16, 8, 8, 8],
        skip_channels: 4,
        image_channels: 1,
        out_channels: 1,
    };
    let mut head = TransUnetHead::new(cfg, 11).unwrap();
    let mut store = pack(&mut head, &Device::Cpu);
    let names = head.param_shapes().unwrap();
    assert!(names
        .iter()
        .any(|(n, s)| n == "decoder.blocks.3.conv1.0.weight" && s == &vec![8, 12, 3, 3]));
    assert!(names
        .iter()
        .any(|(n, s)| n == "decoder.conv_more.0.weight" && s == &vec![4, 1, 3, 3]));
    assert!(names
        .iter()
        .any(|(n, s)| n == "segmentation_head.0.weight" && s == &vec![1, 8, 1, 1]));
    // Clean targets: smooth seismic-like layers whose frequencies and phase are drawn from
    // (seed, image); inputs: the target plus uniform noise in ±0.3, and random tokens.
    let pair = |seed: u64| {
        let shape = rand_vec(3 * b, seed ^ 0x5eed, 0.0, 1.0);
        let clean: Vec<f32> = (0..b * img * img)
            .map(|i| {
                let (n, y, x) = (i / (img * img), (i / img) % img, i % img);
                let (fy, fx, ph) = (shape[3 * n], shape[3 * n + 1], shape[3 * n + 2]);
                ((0.2 + 0.3 * fy) * y as f32 + (0.2 * fx - 0.1) * x as f32 + 6.3 * ph).sin()
            })
            .collect();
        let noise = rand_vec(clean.len(), seed, -0.3, 0.3);
        let noisy: Vec<f32> = clean.iter().zip(&noise).map(|(a, b)| a + b).collect();
        (
            rand_tensor(&[b, c, g, g], 2000 + seed),
            Tensor::from_f32(&[b, 1, img, img], noisy).unwrap(),
            Tensor::from_f32(&[b, 1, img, img], clean).unwrap(),
        )
    };
    let mut opt = AdamW::new(1e-2);
    let (mut first, mut last) = (None, 0.0);
    for step in 0..STEPS {
        // new images every step
        let (tokens, image, target) = pair(100 + step);
        let (pred, cache) = head.forward(&tokens, &image).unwrap();
        assert_eq!(pred.shape, vec![b, 1, img, img]);
        let l = ops::mse(&pred, &target).unwrap().loss;
        assert!(l.is_finite(), "step {step}: loss {l}");
        first.get_or_insert(l);
        last = l;
        let dp = ops::mse_backward(&pred, &target, 1.0).unwrap();
        let dt = head.backward(&cache, &dp, &mut store.grads).unwrap();
        assert_eq!(dt.shape, tokens.shape);
        opt.step(&mut store);
    }
    let first = first.unwrap();
    // Held out: images and noise never trained on. The identity (returning the noisy input)
    // scores the noise power, 0.3²/3 = 0.03.
    let (mut held, mut identity) = (0.0, 0.0);
    for k in 0..4 {
        let (tokens, image, target) = pair(50_000 + k);
        let (pred, _) = head.forward(&tokens, &image).unwrap();
        held += ops::mse(&pred, &target).unwrap().loss / 4.0;
        identity += ops::mse(&image, &target).unwrap().loss / 4.0;
    }
    println!(
        "regression: training MSE {first:.4} → {last:.4}; held out {held:.4} (identity \
         {identity:.4}) in {:.1?}",
        start.elapsed()
    );
    // Measured (CPU, 200 steps): 0.0117 held out against 0.0295 for the identity (0.40 ×); with
    // 60 steps over 8 fixed layer families, the held-out MSE was 8 × the identity's.
    assert!(
        held < 0.7 * identity,
        "held-out MSE {held:.4} must beat returning the noisy input ({identity:.4}) by 30 %"
    );
}

#[test]
fn classification_head_overfits_random_tokens() {
    let (b, c, k) = (8usize, 12usize, 4usize);
    let mut head = ClassificationHead::new(c, k, 3).unwrap();
    let mut store = pack(&mut head, &Device::Cpu);
    let x = rand_tensor(&[b, c], 3000);
    let labels: Vec<i32> = (0..b as i32).map(|i| i % k as i32).collect();
    let tt = Tensor::from_i32(&[b], labels).unwrap();
    let mut opt = AdamW::new(5e-2);
    let (mut first, mut last) = (None, 0.0);
    for _ in 0..40 {
        let (logits, cache) = head.forward(&x).unwrap();
        let l = ops::cross_entropy(&logits, &tt).unwrap();
        first.get_or_insert(l.loss);
        last = l.loss;
        let dl = ops::cross_entropy_backward(&logits, &tt, l.count, 1.0).unwrap();
        let dx = head.backward(&cache, &dl, &mut store.grads).unwrap();
        assert_eq!(dx.shape, vec![b, c]);
        opt.step(&mut store);
    }
    println!(
        "classification: cross-entropy {:.4} → {last:.4}",
        first.unwrap()
    );
    assert!(last < 0.2 * first.unwrap());
}
