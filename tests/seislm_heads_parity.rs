//! Parity with PyTorch for the SeisLM heads: tests/fixtures/seislm_heads.safetensors (made by
//! tools/make_seislm_head_fixtures.py with the SeisLM repository's structure and module names)
//! loads strictly into our PhasePickHead and EventHead by those names (BatchNorm step counters
//! skipped), and the eval-mode logits (running statistics), the train-mode logits (batch
//! statistics) and every train-mode gradient match, on the CPU; each `_cuda` twin (ignored: it
//! needs a GPU) runs the same on CUDA.

mod common;
use common::*;
use seisfuse::models::seislm_heads::{EventHead, HeadConfig, PhasePickHead};
use seisfuse::nn::Parameters;
use seisfuse::weights::safetensors_io::SafetensorsFile;
use seisfuse::weights::{load_into_with, LoadOptions};
use seisfuse::{Device, Tensor};

const TOL: f64 = 1e-5;

fn fixture() -> std::path::PathBuf {
    fixtures_dir().join("seislm_heads.safetensors")
}

fn load<M: Parameters>(m: &mut M, prefix: &str) {
    let opts = LoadOptions {
        strict: true,
        strip_prefix: Some(prefix.into()),
        ignore: vec![],
        ignore_suffixes: vec![],
    };
    let r = load_into_with(m, fixture(), &opts).unwrap();
    assert!(r.is_exact(), "{:?}", r.problems());
    assert!(
        r.ignored.iter().all(|n| n.ends_with("num_batches_tracked")) && r.ignored.len() >= 2,
        "{:?}",
        r.ignored
    );
}

fn close(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.numel(), want.numel(), "{what}");
    let e = rel_err(&got.to_vec_f32().unwrap(), &want.to_vec_f32().unwrap());
    println!("{what}: rel err {e:.2e}");
    assert!(e < TOL, "{what}: {e:.3e}");
}

#[test]
fn picking_head_matches_pytorch() {
    picking_head_matches_pytorch_on(Device::Cpu);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn picking_head_matches_pytorch_cuda() {
    picking_head_matches_pytorch_on(cuda("picking head matches pytorch"));
}

fn picking_head_matches_pytorch_on(device: Device) {
    let f = SafetensorsFile::open(fixture()).unwrap();
    let dev = device.clone();
    {
        let cfg = HeadConfig {
            hidden: 6,
            in_chans: 3,
            channels: 9,
            classes: 3,
            dropout: 0.0,
        };
        let mut head = PhasePickHead::new(cfg, 0).unwrap();
        load(&mut head, "pick.");
        let mut store = pack(&mut head, &dev);
        let t = |n: &str| f.tensor(n).unwrap().to_device(&dev).unwrap();
        let (hidden, wave) = (t("input.hidden"), t("input.wave"));
        head.set_training(false);
        let (l, _) = head.forward(&hidden, &wave).unwrap();
        close("eval logits", &l, &f.tensor("eval.pick_logits").unwrap());
        head.set_training(true);
        let (l, c) = head.forward(&hidden, &wave).unwrap();
        close("train logits", &l, &f.tensor("train.pick_logits").unwrap());
        store.zero_grad().unwrap();
        let dh = head
            .backward(&c, &t("input.pick_up"), &mut store.grads)
            .unwrap();
        close("d hidden", &dh, &f.tensor("grad.pick.hidden").unwrap());
        let mut n = 0;
        for e in store.entries().iter().filter(|e| e.trainable) {
            let want = f.tensor(&format!("grad.pick.{}", e.name)).unwrap();
            close(&e.name, &store.grad(&e.name).unwrap(), &want);
            n += 1;
        }
        assert_eq!(n, 8);
    }
}

#[test]
fn event_head_matches_pytorch() {
    event_head_matches_pytorch_on(Device::Cpu);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn event_head_matches_pytorch_cuda() {
    event_head_matches_pytorch_on(cuda("event head matches pytorch"));
}

fn event_head_matches_pytorch_on(device: Device) {
    let f = SafetensorsFile::open(fixture()).unwrap();
    let dev = device.clone();
    {
        let cfg = HeadConfig {
            hidden: 6,
            in_chans: 3,
            channels: 5,
            classes: 4,
            dropout: 0.0,
        };
        let mut head = EventHead::new(cfg, 0).unwrap();
        load(&mut head, "event.");
        let mut store = pack(&mut head, &dev);
        let hidden = f
            .tensor("input.event_hidden")
            .unwrap()
            .to_device(&dev)
            .unwrap();
        head.set_training(false);
        let (l, _) = head.forward(&hidden).unwrap();
        close("eval logits", &l, &f.tensor("eval.event_logits").unwrap());
        head.set_training(true);
        let (l, c) = head.forward(&hidden).unwrap();
        close("train logits", &l, &f.tensor("train.event_logits").unwrap());
        store.zero_grad().unwrap();
        let up = f.tensor("input.event_up").unwrap().to_device(&dev).unwrap();
        let dh = head.backward(&c, &up, &mut store.grads).unwrap();
        close("d hidden", &dh, &f.tensor("grad.event.hidden").unwrap());
        let mut n = 0;
        for e in store.entries().iter().filter(|e| e.trainable) {
            let want = f.tensor(&format!("grad.event.{}", e.name)).unwrap();
            close(&e.name, &store.grad(&e.name).unwrap(), &want);
            n += 1;
        }
        assert_eq!(n, 14);
    }
}
