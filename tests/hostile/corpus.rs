//! The corpus of inputs, written once per run: good files (so a case can break one thing at a
//! time) and bad ones of every kind the suite throws at the commands.

use seisfuse::data::npy;
use seisfuse::models::seislm::{Seislm, SeislmConfig};
use seisfuse::models::seislm_heads::SeislmPicker;
use seisfuse::models::sfm::{Vit, VitConfig};
use seisfuse::weights::{save_from, SafetensorsFile};
use std::path::{Path, PathBuf};

pub struct Corpus {
    pub dir: PathBuf,
    /// Case folders live under here.
    pub cases: PathBuf,
    /// A folder no run can write into (a read-only folder, or /proc when running as root, who
    /// may write anywhere else).
    pub read_only: PathBuf,
}

impl Corpus {
    pub fn path(&self, name: &str) -> PathBuf {
        let p = self.dir.join(name);
        assert!(
            p.exists() || name.starts_with("missing"),
            "corpus file {name} not written"
        );
        p
    }
}

/// Bytes of a version-1 `.npy` header for any header text (the shape may lie).
pub fn npy_header(dict: &str) -> Vec<u8> {
    let mut d = dict.to_string();
    let pad = (64 - (10 + d.len() + 1) % 64) % 64;
    d.extend(std::iter::repeat_n(' ', pad));
    d.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(d.len() as u16).to_le_bytes());
    out.extend_from_slice(d.as_bytes());
    out
}

fn f32_dict(shape: &str) -> String {
    format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}")
}

/// A safetensors file from (name, dtype, shape, bytes), offsets in order.
pub fn safetensors(tensors: &[(&str, &str, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let mut header = String::from("{");
    let mut data = Vec::new();
    for (i, (name, dtype, shape, bytes)) in tensors.iter().enumerate() {
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!(
            "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{},{}]}}",
            data.len(),
            data.len() + bytes.len()
        ));
        data.extend_from_slice(bytes);
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    out
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// `src` rewritten with `edit` applied to each tensor's values (name, values).
fn rewrite(src: &Path, dst: &Path, edit: impl Fn(&str, &mut Vec<f32>) -> bool) {
    let f = SafetensorsFile::open(src).unwrap();
    let mut ts = Vec::new();
    for info in f.infos() {
        let mut v = f.read_f32(&info.name).unwrap();
        if edit(&info.name, &mut v) {
            ts.push((info.name.clone(), info.shape.clone(), v));
        }
    }
    let refs: Vec<(&str, &str, Vec<usize>, Vec<u8>)> = ts
        .iter()
        .map(|(n, s, v)| (n.as_str(), "F32", s.clone(), f32_bytes(v)))
        .collect();
    std::fs::write(dst, safetensors(&refs)).unwrap();
}

/// One 512-byte miniSEED 2 record (big-endian, float32, blockette 1000) of `samples` (at most
/// 112) at 100 Hz starting at (year, day of year, hour).
pub fn mseed_record(
    seq: usize,
    net: &str,
    sta: &str,
    cha: &str,
    (year, doy, hour): (u16, u16, u8),
    samples: &[f32],
) -> Vec<u8> {
    assert!(samples.len() <= 112);
    let mut r = vec![0u8; 512];
    r[..6].copy_from_slice(format!("{:06}", seq % 1_000_000).as_bytes());
    r[6] = b'D';
    r[7] = b' ';
    let pad = |s: &str, n: usize| format!("{s:<n$}").into_bytes();
    r[8..13].copy_from_slice(&pad(sta, 5));
    r[13..15].copy_from_slice(&pad("", 2));
    r[15..18].copy_from_slice(&pad(cha, 3));
    r[18..20].copy_from_slice(&pad(net, 2));
    r[20..22].copy_from_slice(&year.to_be_bytes());
    r[22..24].copy_from_slice(&doy.to_be_bytes());
    r[24] = hour;
    r[30..32].copy_from_slice(&(samples.len() as u16).to_be_bytes());
    r[32..34].copy_from_slice(&100i16.to_be_bytes());
    r[34..36].copy_from_slice(&1i16.to_be_bytes());
    r[39] = 1;
    r[44..46].copy_from_slice(&64u16.to_be_bytes());
    r[46..48].copy_from_slice(&48u16.to_be_bytes());
    r[48..50].copy_from_slice(&1000u16.to_be_bytes());
    r[52] = 4; // float32
    r[53] = 1; // big-endian
    r[54] = 9; // 2^9 = 512 bytes
    for (i, v) in samples.iter().enumerate() {
        r[64 + 4 * i..68 + 4 * i].copy_from_slice(&v.to_be_bytes());
    }
    r
}

/// Z, N and E of one station: `records` consecutive records of 100 samples from `start`.
fn station(
    seq: &mut usize,
    net: &str,
    sta: &str,
    start: (u16, u16, u8),
    records: usize,
) -> Vec<u8> {
    let mut out = Vec::new();
    for cha in ["HHZ", "HHN", "HHE"] {
        for k in 0..records {
            let v: Vec<f32> = (0..100)
                .map(|i| ((k * 100 + i) as f32 * 0.3).sin() * 100.0)
                .collect();
            // 100 samples at 100 Hz = 1 s per record
            let (y, d, h) = start;
            let mut rec = mseed_record(*seq, net, sta, cha, (y, d, h), &v);
            rec[26] = k as u8; // seconds
            out.extend(rec);
            *seq += 1;
        }
    }
    out
}

pub fn build(root: &Path) -> Corpus {
    let dir = root.join("corpus");
    let cases = root.join("cases");
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&cases).unwrap();
    let w = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();

    // Good inputs.
    let img: Vec<f32> = (0..2 * 64 * 64).map(|i| (i as f32 * 0.01).sin()).collect();
    npy::write(dir.join("good_images.npy"), &[2, 64, 64], &img).unwrap();
    let wav: Vec<f32> = (0..2 * 3 * 400).map(|i| (i as f32 * 0.05).sin()).collect();
    npy::write(dir.join("good_waves.npy"), &[2, 3, 400], &wav).unwrap();
    let picks: Vec<i32> = vec![50, 120, -1, -1];
    npy::write(dir.join("good_picks.npy"), &[2, 2], &picks).unwrap();

    // Bad .npy files.
    let mut b = npy_header(&f32_dict("(2, 64, 64)"));
    b.extend(vec![0u8; 1000]);
    w("truncated.npy", &b);
    w(
        "random.npy",
        &(0..300u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    );
    let mut b = npy_header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3, 4), }");
    b.extend(vec![0u8; 96]);
    w("fortran.npy", &b);
    let mut b = npy_header("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3, 4), }");
    b.extend(vec![0u8; 96]);
    w("bigendian.npy", &b);
    let mut nan = wav.clone();
    nan[77] = f32::NAN;
    npy::write(dir.join("nan_waves.npy"), &[2, 3, 400], &nan).unwrap();
    let mut inf = img.clone();
    inf[5] = f32::INFINITY;
    npy::write(dir.join("inf_images.npy"), &[2, 64, 64], &inf).unwrap();
    w(
        "oversized_claim.npy",
        &npy_header(&f32_dict("(4611686018427387904, 4611686018427387904)")),
    );
    // 128 bytes: a zero batch of huge images (nothing to read, everything to allocate).
    w(
        "zero_batch.npy",
        &npy_header(&f32_dict("(0, 1048576, 1048576)")),
    );
    w(
        "zero_batch_waves.npy",
        &npy_header(&f32_dict("(0, 3, 1099511627776)")),
    );
    npy::write(dir.join("height0.npy"), &[2, 0, 64], &[] as &[f32]).unwrap();
    npy::write(dir.join("scalar.npy"), &[], &[1.5f32]).unwrap();
    let amp: Vec<f32> = wav.iter().map(|v| v * 1e30).collect();
    npy::write(dir.join("huge_amplitude.npy"), &[2, 3, 400], &amp).unwrap();
    // A thin array: 80 KB that an unbounded enlargement turns into gigabytes of pixels.
    let thin: Vec<f32> = (0..20_000).map(|i| (i as f32 * 0.1).sin()).collect();
    npy::write(dir.join("thin.npy"), &[1, 20_000], &thin).unwrap();
    // Folders named like files.
    std::fs::create_dir_all(dir.join("folder.npy")).unwrap();
    std::fs::create_dir_all(dir.join("folder.mseed")).unwrap();
    std::fs::create_dir_all(dir.join("folder.safetensors")).unwrap();

    // Raw .dat: 64 bytes, and a sidecar whose shape product overflows.
    w("small.dat", &[0u8; 64]);
    w("overflow.dat", &[0u8; 64]);
    w(
        "overflow.dat.json",
        b"{\"shape\": [4294967296, 4294967296, 1], \"dtype\": \"float32\"}",
    );

    // miniSEED.
    let mut seq = 1;
    let mut ms = station(&mut seq, "XX", "STA1", (2024, 10, 0), 4);
    ms.extend(station(&mut seq, "XX", "STA2", (2024, 10, 0), 4));
    w("two_stations.mseed", &ms);
    let mut ms = station(&mut seq, "XX", "GAP", (2000, 1, 0), 1);
    ms.extend(station(&mut seq, "XX", "GAP", (2020, 1, 0), 1));
    w("gap_years.mseed", &ms);
    let one = station(&mut seq, "XX", "ONE", (2024, 10, 0), 4);
    w("truncated.mseed", &one[..700]);
    w(
        "random.mseed",
        &(0..1024u32)
            .map(|i| (i * 31 % 253) as u8)
            .collect::<Vec<_>>(),
    );

    // Safetensors: hostile shapes where preset detection reads dimensions.
    let z = |n: usize| vec![0u8; 4 * n];
    w(
        "scalar_vit.safetensors",
        &safetensors(&[
            ("blocks.0.mlp.fc1.weight", "F32", vec![], z(1)),
            (
                "patch_embed.proj.weight",
                "F32",
                vec![4, 1, 16, 16],
                z(1024),
            ),
        ]),
    );
    w(
        "scalar_w2v.safetensors",
        &safetensors(&[
            (
                "encoder.layers.0.feed_forward.intermediate_dense.weight",
                "F32",
                vec![],
                z(1),
            ),
            (
                "feature_extractor.conv_layers.0.conv.weight",
                "F32",
                vec![],
                z(1),
            ),
            (
                "feature_projection.projection.weight",
                "F32",
                vec![4, 4],
                z(16),
            ),
        ]),
    );
    w(
        "scalar_decoder.safetensors",
        &safetensors(&[
            ("decoder_embed.weight", "F32", vec![], z(1)),
            ("mask_token", "F32", vec![], z(1)),
            ("patch_embed.proj.weight", "F32", vec![], z(1)),
            ("pos_embed", "F32", vec![1, 1, 1], z(1)),
        ]),
    );
    let mut bad = safetensors(&[
        ("good_one", "F32", vec![2], z(2)),
        ("bad_one", "F32", vec![2], z(2)),
    ]);
    // bad_one claims [5] but keeps its 8 bytes
    let s = String::from_utf8_lossy(&bad[8..]).into_owned();
    let fixed = s.replacen(
        "\"bad_one\":{\"dtype\":\"F32\",\"shape\":[2]",
        "\"bad_one\":{\"dtype\":\"F32\",\"shape\":[5]",
        1,
    );
    bad.truncate(8);
    bad.extend(fixed.into_bytes());
    w("bad_offsets.safetensors", &bad);
    w("empty.safetensors", &safetensors(&[]));
    w(
        "unknown.safetensors",
        &safetensors(&[("foo.weight", "F32", vec![3], z(3))]),
    );

    // Real tiny checkpoints, and damaged copies.
    let mut vit = Vit::new(VitConfig::preset("sfm-tiny").unwrap(), 1).unwrap();
    save_from(&mut vit, dir.join("sfm_tiny.safetensors"), false).unwrap();
    let mut sl = Seislm::new(SeislmConfig::preset("seislm-tiny").unwrap(), 2).unwrap();
    save_from(&mut sl, dir.join("seislm_tiny.safetensors"), false).unwrap();
    let hidden = SeislmConfig::preset("seislm-tiny").unwrap().hidden;
    let mut picker = SeislmPicker::new("seislm-tiny", hidden + 3, 3).unwrap();
    save_from(&mut picker, dir.join("picker_tiny.safetensors"), false).unwrap();
    rewrite(
        &dir.join("sfm_tiny.safetensors"),
        &dir.join("sfm_tiny_nan.safetensors"),
        |n, v| {
            if n == "blocks.0.attn.qkv.weight" {
                v[3] = f32::NAN;
            }
            true
        },
    );
    rewrite(
        &dir.join("sfm_tiny.safetensors"),
        &dir.join("sfm_tiny_partial.safetensors"),
        |n, _| !n.starts_with("blocks.1."),
    );
    rewrite(
        &dir.join("picker_tiny.safetensors"),
        &dir.join("picker_nan.safetensors"),
        |n, v| {
            if n == "classifier.weight" {
                v.iter_mut().for_each(|x| *x = f32::NAN);
            }
            true
        },
    );
    let good = std::fs::read(dir.join("sfm_tiny.safetensors")).unwrap();
    w("truncated.safetensors", &good[..good.len() / 2]);

    // A folder no one can write into.
    let ro = root.join("read-only");
    std::fs::create_dir_all(&ro).unwrap();
    let mut perm = std::fs::metadata(&ro).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o555);
    std::fs::set_permissions(&ro, perm).unwrap();
    let read_only = if std::fs::write(ro.join("probe"), b"x").is_ok() {
        let _ = std::fs::remove_file(ro.join("probe"));
        PathBuf::from("/proc") // root writes anywhere but here
    } else {
        ro
    };
    seisbench_folders(&dir);
    trained_runs(&dir);
    Corpus {
        dir,
        cases,
        read_only,
    }
}

/// SeisBench folders (a good one; waveforms.hdf5 truncated, of random bytes, with a dataset
/// claiming 2^40 samples, metadata naming a row past its bucket) and continuous miniSEED with
/// pick catalogs (good, a bad row, binary, unknown stations) for `dataset check|build`.
fn seisbench_folders(dir: &Path) {
    use seisfuse::data::h5::H5Writer;
    let tmp = dir.join("sb.tmp.hdf5");
    let mut w = H5Writer::create(&tmp).unwrap();
    w.string("data_format/component_order", "ZNE").unwrap();
    let x: Vec<f32> = (0..2 * 3 * 50).map(|i| (i as f32 * 0.1).sin()).collect();
    w.dataset("data/bucket0", &[2, 3, 50], &x).unwrap();
    w.finish().unwrap().commit().unwrap();
    let good = std::fs::read(&tmp).unwrap();
    std::fs::remove_file(&tmp).unwrap();
    let meta = "trace_name,split,trace_category,trace_P_arrival_sample\n\
                \"bucket0$0,:3,:50\",train,earthquake,10\n\
                \"bucket0$1,:3,:50\",test,noise,\n";
    // The dims [2, 3, 50] (and the equal maximum dims) claim 2^40 traces instead.
    let dims: Vec<u8> = [2u64, 3, 50].iter().flat_map(|d| d.to_le_bytes()).collect();
    let at = good.windows(24).position(|w| w == dims.as_slice()).unwrap();
    let mut huge = good.clone();
    huge[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    huge[at + 24..at + 32].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let random: Vec<u8> = (0..4000u32).map(|i| (i * 7919 % 251) as u8).collect();
    for (name, h5, m) in [
        ("sb_good", &good[..], meta),
        ("sb_truncated", &good[..good.len() / 2], meta),
        ("sb_random", &random[..], meta),
        ("sb_huge", &huge[..], meta),
        (
            "sb_bad_row",
            &good[..],
            "trace_name,split\n\"bucket0$7,:3,:50\",train\n",
        ),
    ] {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("waveforms.hdf5"), h5).unwrap();
        std::fs::write(d.join("metadata.csv"), m).unwrap();
    }
    use seisfuse::data::synth::continuous::{write, ContinuousConfig};
    let cfg = ContinuousConfig::new(1, 300.0, 2);
    write(&dir.join("cont"), &cfg, 1, 0, false, &|_| {}).unwrap();
    let head = "event_id,network,station,location,phase,time\n";
    let w = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    w(
        "bad_catalog.csv",
        &format!("{head}e1,XS,S0001,00,P,2024-01-01T00:01:00Z\ne2,XS,S0001,00,P\n"),
    );
    w(
        "unknown_catalog.csv",
        &format!("{head}e1,ZZ,NOPE,00,P,2024-01-01T00:01:00Z\n"),
    );
    std::fs::write(
        dir.join("binary_catalog.csv"),
        (0..3000u32)
            .map(|i| (i * 31 % 256) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
}

/// What `train`, `eval`, `predict` and `demo` read: a facies run trained one step on 64×64
/// sections (`run_facies`), and a paired folder as `synth paired` writes it (`pairs`).
fn trained_runs(dir: &Path) {
    let bin = super::harness::binary();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(&bin)
            .args(args)
            .env("SEISFUSE_PROGRESS_SECS", "1000")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let out = dir.join("run_facies");
    run(&[
        "train",
        "--task",
        "facies",
        "--device",
        "cpu",
        "--quiet",
        "--steps",
        "1",
        "--batch",
        "2",
        "--set",
        "image_size=64",
        "--set",
        "train_size=4",
        "--set",
        "dev_size=2",
        "--set",
        "test_size=2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let pairs = dir.join("pairs");
    run(&[
        "synth",
        "paired",
        "--out",
        pairs.to_str().unwrap(),
        "--n",
        "12",
        "--size",
        "32",
        "--samples",
        "401",
    ]);
}
