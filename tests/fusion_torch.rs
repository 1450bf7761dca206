//! The fusion layers against PyTorch (tests/fixtures/fusion_torch.safetensors, made by
//! tools/make_fusion_fixtures.py): the ImageBind-style binding head (LayerNorm, pooling,
//! projection, L2 normalisation, clamped learnable logit scale, symmetric InfoNCE) and a
//! pre-LN cross-attention block with unequal query and key/value lengths. Parameters load
//! strictly under our names; the loss, the outputs, and the gradients of the inputs and of
//! every parameter match on the CPU at 1e-5 (relative L2).

mod common;
use common::{assert_close, fixtures_dir};
use seisfuse::models::fusion::{loss, BindingConfig, BindingHead, EncoderConfig, Objective};
use seisfuse::nn::{CrossBlock, Init, ParamStore, Parameters};
use seisfuse::weights::{load_from_file, LoadOptions, SafetensorsFile};
use seisfuse::{Device, Tensor};

fn fixture() -> SafetensorsFile {
    SafetensorsFile::open(fixtures_dir().join("fusion_torch.safetensors"))
        .unwrap_or_else(|e| panic!("{e:#} (regenerate with tools/make_fusion_fixtures.py)"))
}

fn load(model: &mut dyn Parameters, file: &SafetensorsFile, prefix: &str) {
    let opts = LoadOptions {
        strict: true,
        strip_prefix: Some(prefix.into()),
        ..Default::default()
    };
    let r = load_from_file(model, file, &opts).unwrap();
    assert!(r.is_exact(), "{:?}", r.problems());
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.to_vec_f32().unwrap()
}

/// Relative L2 within 1e-5 of PyTorch's values (computed in float64); a reference that is zero
/// in exact arithmetic (the key bias's gradient: softmax ignores a shift shared by a query's
/// scores) is compared in absolute terms instead.
fn close(what: &str, got: &[f32], want: &[f32]) {
    let peak = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    if peak < 1e-6 {
        let worst = got.iter().fold(0f32, |m, v| m.max(v.abs()));
        println!("{what}: zero reference, max |ours| {worst:.2e}");
        assert!(worst < 1e-6, "{what}: {worst:e} where PyTorch has ~0");
        return;
    }
    assert_close(what, got, want, 1e-5, 1e-4 * peak.max(1.0) as f64);
}

/// Every parameter's gradient in the store against the fixture's `{prefix}{name}`.
fn compare_param_grads(store: &ParamStore, f: &SafetensorsFile, prefix: &str) {
    for e in store.entries() {
        let want = f.tensor(&format!("{prefix}{}", e.name)).unwrap();
        close(
            &format!("d {}", e.name),
            &vals(&store.grad(&e.name).unwrap()),
            &vals(&want),
        );
    }
}

#[test]
fn binding_head_matches_pytorch() {
    let f = fixture();
    for k in 0..2 {
        let mut cfg = BindingConfig::new(EncoderConfig::tiny(), 6);
        cfg.logit_scale_init = 1.0; // overwritten by the fixture's value
        let mut head = BindingHead::new(&cfg, 12, 10, &mut Init::new(0)).unwrap();
        load(&mut head, &f, &format!("bind{k}."));
        let mut store = ParamStore::pack(&mut head, &Device::Cpu).unwrap();
        let ti = f.tensor(&format!("bind{k}_in.image")).unwrap();
        let tw = f.tensor(&format!("bind{k}_in.wave")).unwrap();
        let (out, cache) = head.forward(&ti, &tw).unwrap();
        let no_labels = Tensor::from_i32(&[0], vec![]).unwrap();
        let (l, dlogits) = loss(Objective::Contrastive, &out.logits, &no_labels).unwrap();
        let want_loss = vals(&f.tensor(&format!("bind{k}_out.loss")).unwrap())[0];
        println!("binding case {k}: loss {} (PyTorch {want_loss})", l.loss);
        assert!((l.loss - want_loss).abs() < 1e-5 * want_loss.abs().max(1.0));
        close(
            "similarity logits",
            &vals(&out.logits),
            &vals(&f.tensor(&format!("bind{k}_out.logits")).unwrap()),
        );
        let (ei, ew) = out.embeddings.as_ref().unwrap();
        for e in [ei, ew] {
            let v = vals(e);
            for row in v.chunks(6) {
                let n: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
                assert!((n - 1.0).abs() < 1e-5, "unit embeddings");
            }
        }
        store.zero_grad().unwrap();
        let (dti, dtw) = head.backward(&cache, &dlogits, &mut store.grads).unwrap();
        close(
            "d image tokens",
            &vals(&dti),
            &vals(&f.tensor(&format!("bind{k}_grad.image")).unwrap()),
        );
        close(
            "d waveform tokens",
            &vals(&dtw),
            &vals(&f.tensor(&format!("bind{k}_grad.wave")).unwrap()),
        );
        compare_param_grads(&store, &f, &format!("bind{k}_grad."));
        let ds = vals(&store.grad("log_logit_scale").unwrap())[0];
        if k == 1 {
            assert_eq!(ds, 0.0, "above the clamp the scale gets no gradient");
        } else {
            assert!(ds != 0.0);
        }
    }
}

#[test]
fn cross_attention_block_with_unequal_lengths_matches_pytorch() {
    let f = fixture();
    let mut block = CrossBlock::new(16, 4, 1.5, 1e-6, &mut Init::new(0)).unwrap();
    load(&mut block, &f, "cross.");
    let mut store = ParamStore::pack(&mut block, &Device::Cpu).unwrap();
    let x = f.tensor("cross_in.x").unwrap();
    let ctx = f.tensor("cross_in.ctx").unwrap();
    assert_ne!(x.shape[1], ctx.shape[1], "query and context lengths differ");
    let (y, cache) = block.forward(&x, &ctx).unwrap();
    close(
        "cross block y",
        &vals(&y),
        &vals(&f.tensor("cross_out.y").unwrap()),
    );
    store.zero_grad().unwrap();
    let w = f.tensor("cross_in.weight").unwrap();
    let (dx, dctx) = block.backward(&cache, &w, &mut store.grads).unwrap();
    close(
        "cross block dx",
        &vals(&dx),
        &vals(&f.tensor("cross_grad.x").unwrap()),
    );
    close(
        "cross block dctx",
        &vals(&dctx),
        &vals(&f.tensor("cross_grad.ctx").unwrap()),
    );
    compare_param_grads(&store, &f, "cross_grad.");
}
