//! Datasets over .npy files and the background loader: order, batching, drop-last,
//! determinism, transforms, and errors from bad data.

use seisfuse::data::npy;
use seisfuse::data::transforms::{DemeanStd, GaussianPicks, RandomWindow, ZScore};
use seisfuse::data::{Dataset, Loader, LoaderConfig, NpyDataset, Target, VecDataset};
use std::path::PathBuf;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("seisfuse-loader-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Sample i of a [n, 4, 5] file holds the value 100 i + j at element j.
fn numbered(d: &std::path::Path, n: usize) -> PathBuf {
    let v: Vec<f32> = (0..n)
        .flat_map(|i| (0..20).map(move |j| (100 * i + j) as f32))
        .collect();
    let p = d.join("x.npy");
    npy::write(&p, &[n, 4, 5], &v).unwrap();
    p
}

#[test]
fn every_sample_once_in_seeded_order() {
    let d = tmpdir("order");
    let ds = NpyDataset::open(numbered(&d, 23)).unwrap();
    assert_eq!(ds.len(), 23);
    assert_eq!(ds.input_shape(), vec![4, 5]);
    let s = ds.get(7).unwrap();
    assert_eq!(s.input[3], 703.0);
    assert!(ds.get(23).is_err());

    let mut cfg = LoaderConfig::new(5);
    cfg.seed = 9;
    cfg.workers = 3;
    let loader = Loader::new(ds, cfg.clone()).unwrap();
    assert_eq!(loader.num_batches(), 5);
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    for b in loader.epoch(0) {
        let b = b.unwrap();
        sizes.push(b.indices.len());
        let x = b.inputs.f32s().unwrap();
        assert_eq!(b.inputs.shape[1..], [4, 5]);
        for (k, &i) in b.indices.iter().enumerate() {
            assert_eq!(x[k * 20 + 11], (100 * i + 11) as f32);
        }
        seen.extend(b.indices);
    }
    assert_eq!(sizes, vec![5, 5, 5, 5, 3]);
    let order = seen.clone();
    seen.sort();
    assert_eq!(seen, (0..23).collect::<Vec<_>>());
    assert_ne!(order, (0..23).collect::<Vec<_>>(), "shuffled");
    // Same seed and epoch: same order, whatever the worker count; another epoch: another order.
    let again: Vec<usize> = loader.epoch(0).flat_map(|b| b.unwrap().indices).collect();
    assert_eq!(again, order);
    let other: Vec<usize> = loader.epoch(1).flat_map(|b| b.unwrap().indices).collect();
    assert_ne!(other, order);
    let mut one = cfg.clone();
    one.workers = 1;
    let l1 = Loader::new(NpyDataset::open(d.join("x.npy")).unwrap(), one).unwrap();
    let o1: Vec<usize> = l1.epoch(0).flat_map(|b| b.unwrap().indices).collect();
    assert_eq!(o1, order);

    let mut dl = cfg;
    dl.drop_last = true;
    dl.shuffle = false;
    let l = Loader::new(NpyDataset::open(d.join("x.npy")).unwrap(), dl).unwrap();
    let b: Vec<_> = l.epoch(0).map(|b| b.unwrap().indices).collect();
    assert_eq!(b.len(), 4);
    assert_eq!(b[0], vec![0, 1, 2, 3, 4]);
    // Dropping an epoch early stops its workers (the test would hang otherwise).
    let mut e = l.epoch(0);
    e.next().unwrap().unwrap();
    drop(e);
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn targets_stack_by_kind() {
    let d = tmpdir("targets");
    let x = numbered(&d, 6);
    npy::write(d.join("cls.npy"), &[6], &[0i32, 1, 2, 0, 1, 2]).unwrap();
    let maps: Vec<u8> = (0..120).map(|i| (i % 3) as u8).collect();
    npy::write(d.join("maps.npy"), &[6, 4, 5], &maps).unwrap();
    npy::write(
        d.join("picks.npy"),
        &[6, 2],
        &[1i32, 3, -1, -1, 2, 4, 0, -1, 1, 1, 2, 2],
    )
    .unwrap();
    let mut cfg = LoaderConfig::new(4);
    cfg.shuffle = false;

    let l = Loader::new(
        NpyDataset::open(&x)
            .unwrap()
            .with_classes(d.join("cls.npy"))
            .unwrap(),
        cfg.clone(),
    )
    .unwrap();
    let b = l.epoch(0).next().unwrap().unwrap();
    let t = b.targets.unwrap();
    assert_eq!(t.shape, vec![4]);
    assert_eq!(&*t.i32s().unwrap(), &[0, 1, 2, 0]);

    let l = Loader::new(
        NpyDataset::open(&x)
            .unwrap()
            .with_class_maps(d.join("maps.npy"))
            .unwrap(),
        cfg.clone(),
    )
    .unwrap();
    let t = l.epoch(0).next().unwrap().unwrap().targets.unwrap();
    assert_eq!(t.shape, vec![4, 4, 5]);
    assert_eq!(t.i32s().unwrap()[..4], [0, 1, 2, 0]);

    let l = Loader::new(
        NpyDataset::open(&x).unwrap().with_dense(&x).unwrap(),
        cfg.clone(),
    )
    .unwrap();
    let b = l.epoch(0).next().unwrap().unwrap();
    assert_eq!(
        &*b.targets.unwrap().f32s().unwrap(),
        &*b.inputs.f32s().unwrap()
    );

    let l = Loader::new(
        NpyDataset::open(&x)
            .unwrap()
            .with_picks(d.join("picks.npy"))
            .unwrap(),
        cfg.clone(),
    )
    .unwrap();
    let t = l.epoch(0).next().unwrap().unwrap().targets.unwrap();
    assert_eq!(
        &*t.f32s().unwrap(),
        &[1.0, 3.0, -1.0, -1.0, 2.0, 4.0, 0.0, -1.0]
    );

    // Mismatched label files are refused with the file's name.
    npy::write(d.join("cls5.npy"), &[5], &[0i32; 5]).unwrap();
    let e = NpyDataset::open(&x)
        .unwrap()
        .with_classes(d.join("cls5.npy"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("cls5.npy"), "{e}");
    let e = NpyDataset::open(&x)
        .unwrap()
        .with_class_maps(d.join("cls.npy"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("do not match"), "{e}");
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn transforms_normalise_crop_and_label() {
    // Two 3×400 waveforms with offsets and picks.
    let mut inputs = Vec::new();
    for k in 0..2 {
        inputs.push(
            (0..1200)
                .map(|i| {
                    5.0 + (k + 1) as f32 * ((i % 400) as f32 * 0.1).sin() * (1 + i / 400) as f32
                })
                .collect(),
        );
    }
    let targets = vec![
        Target::Picks {
            p: Some(150.0),
            s: Some(250.0),
        },
        Target::Picks { p: None, s: None },
    ];
    let ds = VecDataset::new(vec![3, 400], inputs, targets).unwrap();
    let mut cfg = LoaderConfig::new(2);
    cfg.shuffle = false;
    let l = Loader::new(ds, cfg)
        .unwrap()
        .with_transform(RandomWindow { length: 300 })
        .unwrap()
        .with_transform(DemeanStd::default())
        .unwrap()
        .with_transform(GaussianPicks::default())
        .unwrap();
    assert_eq!(l.item_shape(), &[3, 300]);
    let b = l.epoch(0).next().unwrap().unwrap();
    assert_eq!(b.inputs.shape, vec![2, 3, 300]);
    let x = b.inputs.f32s().unwrap();
    for ch in x.chunks(300) {
        let m: f32 = ch.iter().sum::<f32>() / 300.0;
        let v: f32 = ch.iter().map(|a| (a - m) * (a - m)).sum::<f32>() / 300.0;
        assert!(m.abs() < 1e-4 && (v - 1.0).abs() < 1e-3, "mean {m} var {v}");
    }
    let t = b.targets.unwrap();
    assert_eq!(t.shape, vec![2, 3, 300]);
    let y = t.f32s().unwrap();
    // Sample 0: the P row peaks at 1 somewhere (both picks can't leave a 300 window of 400
    // with picks 100 apart at 150/250 unless cut), rows sum to at most 1 + overlap.
    let p_peak = y[..300].iter().cloned().fold(0f32, f32::max);
    let s_peak = y[300..600].iter().cloned().fold(0f32, f32::max);
    assert!(p_peak > 0.99 || s_peak > 0.99);
    // Sample 1 has no picks: all noise.
    assert!(y[900..1500].iter().all(|&v| v == 0.0));
    assert!(y[1500..1800].iter().all(|&v| v == 1.0));

    // SFM z-score on images.
    let ds = VecDataset::new(
        vec![2, 3],
        vec![vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]],
        vec![Target::Class(1)],
    )
    .unwrap();
    let l = Loader::new(ds, LoaderConfig::new(1))
        .unwrap()
        .with_transform(ZScore::default())
        .unwrap();
    let b = l.epoch(0).next().unwrap().unwrap();
    let std = (35.0f32 / 12.0).sqrt();
    assert!((b.inputs.f32s().unwrap()[0] - (1.0 - 3.5) / (std + 1e-6)).abs() < 1e-5);
}

#[test]
fn bad_samples_stop_the_epoch_with_a_named_error() {
    let d = tmpdir("nan");
    let mut v = vec![0.5f32; 60];
    v[47] = f32::INFINITY;
    npy::write(d.join("bad.npy"), &[3, 4, 5], &v).unwrap();
    let mut cfg = LoaderConfig::new(1);
    cfg.shuffle = false;
    cfg.workers = 2;
    let l = Loader::new(NpyDataset::open(d.join("bad.npy")).unwrap(), cfg).unwrap();
    let results: Vec<_> = l.epoch(0).collect();
    assert!(results[0].is_ok() && results[1].is_ok());
    let e = format!("{:#}", results[2].as_ref().unwrap_err());
    assert!(
        e.contains("bad.npy") && e.contains("element 47") && e.contains("sample 2"),
        "{e}"
    );
    // A 1-D file has no sample axis.
    npy::write(d.join("flat.npy"), &[4], &[1f32; 4]).unwrap();
    assert!(NpyDataset::open(d.join("flat.npy")).is_err());
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn recycled_buffers_are_reused_and_refilled() {
    let d = tmpdir("recycle");
    let ds = NpyDataset::open(numbered(&d, 12)).unwrap();
    let mut cfg = LoaderConfig::new(4);
    cfg.shuffle = false;
    cfg.workers = 1;
    let l = Loader::new(ds, cfg).unwrap();
    for epoch in 0..3 {
        for b in l.epoch(epoch) {
            let b = b.unwrap();
            let x = b.inputs.f32s().unwrap();
            for (k, &i) in b.indices.iter().enumerate() {
                assert_eq!(x[k * 20 + 19], (100 * i + 19) as f32);
            }
            drop(x);
            l.recycle(b);
        }
    }
    std::fs::remove_dir_all(d).ok();
}
