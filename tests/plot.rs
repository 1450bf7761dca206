//! Figures (src/plot): each kind on small inputs decodes as a PNG of the expected size, is not
//! blank, shows each series' legend colour; bad inputs are errors, not panics.
//!
//! `SEISFUSE_KEEP_FIGURES=DIR` keeps the figures in DIR to look at.

use seisfuse::plot::{
    curves_from_log, pca_2d, read_log, BarSeries, Bars, Confusion, Curves, Figure, Panel, Pick,
    Probability, Scatter, Sections, Series, Waveforms,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("seisfuse-plot-{tag}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Decodes a PNG: (width, height, RGB pixels).
fn decode(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let px = buf[..info.buffer_size()]
        .chunks_exact(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    (info.width, info.height, px)
}

/// Writes the figure, keeps a copy when asked, and checks it decodes with the figure's size,
/// has many colours (text, lines, antialiasing) and shows every colour in `must`.
fn check(fig: &Figure, name: &str, must: &[[u8; 3]]) -> Vec<[u8; 3]> {
    let d = tmpdir(name);
    let p = d.join(format!("{name}.png"));
    fig.write_png(&p).unwrap();
    if let Ok(keep) = std::env::var("SEISFUSE_KEEP_FIGURES") {
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&p, Path::new(&keep).join(format!("{name}.png"))).unwrap();
    }
    let (w, h, px) = decode(&p);
    assert_eq!((w, h), (fig.width(), fig.height()));
    assert_eq!(px.len(), (w * h) as usize);
    let distinct: HashSet<[u8; 3]> = px.iter().copied().collect();
    assert!(
        distinct.len() > 20,
        "{name}: only {} colours",
        distinct.len()
    );
    let white = px.iter().filter(|c| **c == [255, 255, 255]).count();
    assert!(
        white > px.len() / 10 && white < px.len(),
        "{name}: {white} white pixels of {}",
        px.len()
    );
    for c in must {
        assert!(distinct.contains(c), "{name}: colour {c:?} does not appear");
    }
    // Nothing but the figure in the folder (no temporary files left).
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
    std::fs::remove_dir_all(&d).ok();
    px
}

const BLUE: [u8; 3] = [31, 119, 180];
const ORANGE: [u8; 3] = [255, 127, 14];
const GREEN: [u8; 3] = [44, 160, 44];

#[test]
fn curves_draw_series_with_legend_and_log_axis() {
    let x: Vec<f64> = (0..200).map(|i| i as f64 * 10.0).collect();
    let train: Vec<f64> = x.iter().map(|s| 3.0 * (-s / 500.0).exp() + 0.05).collect();
    let dx: Vec<f64> = (0..10).map(|i| i as f64 * 200.0).collect();
    let dev: Vec<f64> = dx.iter().map(|s| 3.2 * (-s / 600.0).exp() + 0.08).collect();
    let fig = Curves {
        title: "loss".into(),
        x_label: "step (optimizer updates)".into(),
        y_label: "loss (cross-entropy, nats)".into(),
        series: vec![
            Series::new("train", &x, &train),
            Series::new("dev", &dx, &dev),
        ],
        log_y: true,
        ..Default::default()
    }
    .render()
    .unwrap();
    assert_eq!((fig.width(), fig.height()), (960, 560));
    check(&fig, "curves_log", &[BLUE, ORANGE]);

    // Non-finite values are left out and noted; a linear axis with three series.
    let mut y3 = train.clone();
    y3[50] = f64::NAN;
    y3[51] = f64::INFINITY;
    let lin = Curves {
        title: "metrics".into(),
        series: vec![
            Series::new("a", &x, &train),
            Series::new("b", &dx, &dev),
            Series::new("c", &x, &y3),
        ],
        ..Default::default()
    };
    check(
        &lin.render().unwrap(),
        "curves_linear",
        &[BLUE, ORANGE, GREEN],
    );
}

#[test]
fn curves_refuse_bad_input() {
    let x = [1.0, 2.0, 3.0];
    let err = |c: Curves| c.render().unwrap_err().to_string();
    assert!(err(Curves::default()).contains("no series"));
    let e = err(Curves {
        series: vec![Series::new("s", &x, &x[..2])],
        ..Default::default()
    });
    assert!(e.contains("3 x values but 2 y values"), "{e}");
    let e = err(Curves {
        series: vec![Series::new("empty", &[], &[])],
        ..Default::default()
    });
    assert!(e.contains("\"empty\" is empty"), "{e}");
    let nan = [f64::NAN; 3];
    let e = err(Curves {
        series: vec![Series::new("s", &x, &nan)],
        ..Default::default()
    });
    assert!(e.contains("no finite values"), "{e}");
    let neg = [-1.0, 0.0, -2.0];
    let e = err(Curves {
        series: vec![Series::new("s", &x, &neg)],
        log_y: true,
        ..Default::default()
    });
    assert!(e.contains("logarithmic"), "{e}");
    // A single point and a constant series draw.
    Curves {
        series: vec![Series::new("one", &[5.0], &[2.0])],
        ..Default::default()
    }
    .render()
    .unwrap();
    let huge = [f64::MAX, -f64::MAX, 0.0];
    assert!(Curves {
        series: vec![Series::new("s", &x, &huge)],
        ..Default::default()
    }
    .render()
    .is_err());
}

#[test]
fn log_figures_from_a_training_log() {
    let d = tmpdir("log");
    let log = d.join("run.jsonl");
    let mut s = String::new();
    for step in 0..60 {
        let loss = 2.5 * (-(step as f64) / 15.0).exp() + 0.02;
        s += &format!(
            "{{\"kind\":\"train\",\"step\":{step},\"loss\":{loss},\"lr\":{},\"grad_norm\":1.0,\"samples_per_s\":100,\"new\":1}}\n",
            1e-3 * (step as f64 / 10.0).min(1.0)
        );
        if step % 10 == 9 {
            s += &format!(
                "{{\"kind\":\"eval\",\"step\":{step},\"split\":\"dev\",\"metrics\":{{\"loss\":{},\"accuracy\":{},\"f1/macro\":{}}}}}\n",
                loss * 1.1,
                0.5 + step as f64 / 150.0,
                0.4 + step as f64 / 160.0
            );
        }
    }
    s += "not json\n{\"kind\":\"train\"}\n\n{\"kind\":\"eval\",\"step\":5,\"split\":\"test\",\"metrics\":{\"accuracy\":1}}\n";
    std::fs::write(&log, s).unwrap();
    let run = read_log(&log).unwrap();
    assert_eq!((run.train.len(), run.dev.len(), run.skipped), (60, 6, 2));
    assert_eq!(run.first_skipped, Some(67));
    let out = d.join("figs");
    let paths = curves_from_log(&log, &out).unwrap();
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["loss.png", "lr.png", "dev-accuracy.png", "dev-f1_macro.png"]
    );
    for p in &paths {
        let (w, h, _) = decode(p);
        assert_eq!((w, h), (960, 560));
        if let Ok(keep) = std::env::var("SEISFUSE_KEEP_FIGURES") {
            std::fs::copy(
                p,
                Path::new(&keep).join(format!("log-{}", p.file_name().unwrap().to_string_lossy())),
            )
            .unwrap();
        }
    }
    // Train and dev loss both in loss.png.
    let (_, _, px) = decode(&out.join("loss.png"));
    assert!(px.contains(&BLUE) && px.contains(&ORANGE));

    // A log with nothing to draw: an error, and no figures.
    std::fs::write(d.join("bad.jsonl"), "x\n{}\n").unwrap();
    let e = curves_from_log(&d.join("bad.jsonl"), &d.join("none")).unwrap_err();
    assert!(e.to_string().contains("no train or dev lines"), "{e}");
    assert!(!d.join("none").exists());
    assert!(curves_from_log(&d.join("missing.jsonl"), &d.join("none")).is_err());
    // A metric that is never finite is left out; the others are drawn.
    std::fs::write(
        d.join("nan.jsonl"),
        "{\"kind\":\"train\",\"step\":1,\"loss\":null}\n{\"kind\":\"train\",\"step\":2,\"loss\":NaN,\"lr\":0.1}\n",
    )
    .unwrap();
    let p = curves_from_log(&d.join("nan.jsonl"), &d.join("nan")).unwrap();
    assert_eq!(p, [d.join("nan").join("lr.png")]);
    std::fs::write(
        d.join("allnan.jsonl"),
        "{\"kind\":\"train\",\"step\":1,\"loss\":null}\n",
    )
    .unwrap();
    let e = curves_from_log(&d.join("allnan.jsonl"), &d.join("none")).unwrap_err();
    assert!(e.to_string().contains("no finite"), "{e}");
    assert!(!d.join("none").exists());
    std::fs::remove_dir_all(&d).ok();
}

fn section(h: usize, w: usize, phase: f32) -> Vec<f32> {
    (0..h * w)
        .map(|i| {
            let (r, c) = ((i / w) as f32, (i % w) as f32);
            ((r * 0.35 + c * 0.05 + phase).sin() * (1.0 - r / h as f32 * 0.5)) * 2.0
        })
        .collect()
}

#[test]
fn sections_panels_colorbar_and_legend() {
    let (h, w) = (48, 64);
    let input = section(h, w, 0.0);
    let truth: Vec<i32> = (0..h * w).map(|i| ((i / w) * 3 / h) as i32).collect();
    let pred: Vec<i32> = (0..h * w)
        .map(|i| (((i / w) + (i % w) / 16) * 3 / h).min(2) as i32)
        .collect();
    let fig = Sections {
        title: "segmentation".into(),
        height: h,
        width: w,
        panels: vec![
            Panel::amplitude("input", &input),
            Panel::classes("true", &truth),
            Panel::classes("predicted", &pred),
        ],
        class_names: vec!["shale".into(), "sand".into(), "salt".into()],
        amplitude_label: "amplitude (normalised)".into(),
        ..Default::default()
    }
    .render()
    .unwrap();
    // The class colours, in the legend and the panels.
    check(
        &fig,
        "sections_segmentation",
        &[BLUE, ORANGE, GREEN, [255, 255, 255]],
    );

    // Denoising: input | target | output | error, a mask over one, depth axis, own scales.
    let target = section(h, w, 0.3);
    let noisy: Vec<f32> = target
        .iter()
        .enumerate()
        .map(|(i, v)| v + ((i * 7919) % 13) as f32 / 20.0 - 0.3)
        .collect();
    let out: Vec<f32> = target.iter().map(|v| v * 0.95).collect();
    let err: Vec<f32> = out.iter().zip(&target).map(|(a, b)| a - b).collect();
    let mask: Vec<u8> = (0..h * w)
        .map(|i| ((i / w) > 30 && (i % w) > 20 && (i % w) < 44) as u8)
        .collect();
    let fig = Sections {
        height: h,
        width: w,
        panels: vec![
            Panel::amplitude("input", &noisy),
            Panel::amplitude("target", &target).with_mask(&mask),
            Panel::amplitude("output", &out),
            Panel::amplitude("error", &err),
        ],
        y_label: "depth sample".into(),
        mask_label: "salt".into(),
        shared_scale: false,
        ..Default::default()
    }
    .render()
    .unwrap();
    check(&fig, "sections_denoise", &[[20, 20, 20]]);

    // Non-finite amplitudes are noted, not fatal; a very thin section stays bounded.
    let mut nan = input.clone();
    nan[3] = f32::NAN;
    Sections {
        height: h,
        width: w,
        panels: vec![Panel::amplitude("x", &nan)],
        ..Default::default()
    }
    .render()
    .unwrap();
    let thin = vec![0.5f32; 2 * 20_000];
    let f = Sections {
        height: 2,
        width: 20_000,
        panels: vec![Panel::amplitude("thin", &thin)],
        ..Default::default()
    }
    .render()
    .unwrap();
    assert!(f.width() < 2000 && f.height() < 1000);
}

#[test]
fn sections_refuse_bad_input() {
    let v = vec![0f32; 12];
    let err = |s: Sections| s.render().unwrap_err().to_string();
    let e = err(Sections {
        height: 3,
        width: 4,
        ..Default::default()
    });
    assert!(e.contains("no panels"), "{e}");
    let e = err(Sections {
        height: 3,
        width: 5,
        panels: vec![Panel::amplitude("a", &v)],
        ..Default::default()
    });
    assert!(e.contains("\"a\" has 12 amplitudes, 3×5 needs 15"), "{e}");
    let e = err(Sections {
        height: 0,
        width: 5,
        panels: vec![Panel::amplitude("a", &v)],
        ..Default::default()
    });
    assert!(e.contains("empty"), "{e}");
    let nan = vec![f32::NAN; 12];
    let e = err(Sections {
        height: 3,
        width: 4,
        panels: vec![Panel::amplitude("a", &nan)],
        ..Default::default()
    });
    assert!(e.contains("no finite amplitude"), "{e}");
    let e = err(Sections {
        height: 3,
        width: 4,
        panels: vec![Panel::default()],
        ..Default::default()
    });
    assert!(e.contains("nothing to draw"), "{e}");
    let e = err(Sections {
        height: 3,
        width: 4,
        panels: vec![Panel::amplitude("a", &v)],
        clip: Some(f32::NAN),
        ..Default::default()
    });
    assert!(e.contains("clip"), "{e}");
}

#[test]
fn waveforms_with_picks_and_probabilities() {
    let (c, s) = (3, 3001);
    let rate = 100.0;
    let data: Vec<f32> = (0..c * s)
        .map(|i| {
            let (k, t) = (i / s, (i % s) as f32);
            let env = if t > 1000.0 {
                (-(t - 1000.0) / 400.0).exp() * 3.0
            } else {
                0.0
            } + if t > 1800.0 {
                (-(t - 1800.0) / 500.0).exp() * 5.0
            } else {
                0.0
            };
            (t * (0.3 + k as f32 * 0.05)).sin() * (0.2 + env)
        })
        .collect();
    let gauss = |m: f32| -> Vec<f32> {
        (0..s)
            .map(|t| (-((t as f32 - m) / 30.0).powi(2)).exp())
            .collect()
    };
    let (pp, sp) = (gauss(1010.0), gauss(1790.0));
    let noise: Vec<f32> = pp.iter().zip(&sp).map(|(a, b)| 1.0 - a - b).collect();
    let fig = Waveforms {
        title: "event 17".into(),
        data: &data,
        channels: c,
        samples: s,
        sampling_rate: Some(rate),
        amplitude_unit: "counts".into(),
        picks: vec![
            Pick::truth("P", 1000.0),
            Pick::truth("S", 1800.0),
            Pick::predicted("P", 1010.0),
            Pick::predicted("S", 1790.0),
        ],
        probabilities: vec![
            Probability {
                name: "P",
                values: &pp,
            },
            Probability {
                name: "S",
                values: &sp,
            },
            Probability {
                name: "noise",
                values: &noise,
            },
        ],
        ..Default::default()
    }
    .render()
    .unwrap();
    assert_eq!(fig.width(), 1100);
    check(
        &fig,
        "waveforms_probabilities",
        &[[31, 95, 205], [214, 39, 40], [130, 130, 130]],
    );

    // Without probabilities or a sampling rate; a long trace; a pick outside the trace.
    let long: Vec<f32> = (0..3 * 100_000)
        .map(|i| ((i % 100_000) as f32 * 0.001).sin())
        .collect();
    let fig = Waveforms {
        data: &long,
        channels: 3,
        samples: 100_000,
        picks: vec![Pick::truth("P", 5e4), Pick::truth("S", 2e6)],
        ..Default::default()
    }
    .render()
    .unwrap();
    check(&fig, "waveforms_plain", &[[31, 95, 205]]);
}

#[test]
fn waveforms_refuse_bad_input() {
    let d = vec![0f32; 30];
    let err = |w: Waveforms| w.render().unwrap_err().to_string();
    let e = err(Waveforms {
        data: &d,
        channels: 3,
        samples: 11,
        ..Default::default()
    });
    assert!(e.contains("30 values for 3 channels of 11"), "{e}");
    let e = err(Waveforms {
        data: &d,
        channels: 3,
        samples: 10,
        sampling_rate: Some(0.0),
        ..Default::default()
    });
    assert!(e.contains("sampling rate"), "{e}");
    let p = vec![0f32; 9];
    let e = err(Waveforms {
        data: &d,
        channels: 3,
        samples: 10,
        probabilities: vec![Probability {
            name: "P",
            values: &p,
        }],
        ..Default::default()
    });
    assert!(e.contains("9 values for 10 samples"), "{e}");
    let nan = vec![f32::NAN; 30];
    let e = err(Waveforms {
        data: &nan,
        channels: 3,
        samples: 10,
        ..Default::default()
    });
    assert!(e.contains("no finite"), "{e}");
    let e = err(Waveforms {
        data: &[],
        channels: 0,
        samples: 0,
        ..Default::default()
    });
    assert!(e.contains("0 channels"), "{e}");
    // All zeros draws (a flat line), as does a NaN pick.
    Waveforms {
        data: &d,
        channels: 3,
        samples: 10,
        picks: vec![Pick::truth("P", f64::NAN)],
        ..Default::default()
    }
    .render()
    .unwrap();
}

#[test]
fn confusion_matrix_counts_and_percent() {
    let names: Vec<String> = ["noise", "P", "S"].map(String::from).to_vec();
    let counts = [90u64, 7, 3, 4, 80, 16, 1, 12, 87];
    let fig = Confusion {
        title: "phase classes".into(),
        class_names: names.clone(),
        counts: &counts,
    }
    .render()
    .unwrap();
    // The darkest Blues cell (90/100 = 0.9 of its row) is dark blue.
    check(&fig, "confusion", &[[255, 255, 255]]);
    // Many classes with long names: vertical column names, counts only.
    let k = 12;
    let names12: Vec<String> = (0..k).map(|i| format!("facies class {i}")).collect();
    let c12: Vec<u64> = (0..k * k)
        .map(|i| if i / k == i % k { 50 } else { (i % 5) as u64 })
        .collect();
    let fig = Confusion {
        title: String::new(),
        class_names: names12,
        counts: &c12,
    }
    .render()
    .unwrap();
    check(&fig, "confusion_12", &[]);
    let err = |c: Confusion| c.render().unwrap_err().to_string();
    assert!(err(Confusion {
        class_names: names.clone(),
        counts: &counts[..8],
        ..Default::default()
    })
    .contains("8 counts for 3 classes"));
    assert!(err(Confusion {
        class_names: names.clone(),
        counts: &[0; 9],
        ..Default::default()
    })
    .contains("all counts are zero"));
    assert!(err(Confusion {
        class_names: vec![],
        counts: &[],
        ..Default::default()
    })
    .contains("no classes"));
}

#[test]
fn scatter_of_pca_embeddings() {
    let (n, d) = (300, 16);
    let mut data = Vec::with_capacity(n * d);
    let mut classes = Vec::new();
    for i in 0..n {
        let k = i % 3;
        classes.push(k);
        for j in 0..d {
            let centre = if j == k { 4.0 } else { 0.0 };
            data.push(centre + (((i * 31 + j * 17) % 97) as f32 / 97.0 - 0.5));
        }
    }
    let p = pca_2d(&data, n, d).unwrap();
    assert_eq!(p.x.len(), n);
    let [xl, yl] = p.axis_labels();
    assert!(
        xl.starts_with("PC 1 (") && xl.ends_with("% of variance)"),
        "{xl}"
    );
    let fig = Scatter {
        title: "embeddings (PCA)".into(),
        x_label: xl,
        y_label: yl,
        x: &p.x,
        y: &p.y,
        classes: &classes,
        class_names: vec!["noise".into(), "earthquake".into(), "explosion".into()],
        ..Default::default()
    }
    .render()
    .unwrap();
    check(&fig, "scatter", &[BLUE, ORANGE, GREEN]);
    let err = |s: Scatter| s.render().unwrap_err().to_string();
    assert!(err(Scatter::default()).contains("no points"));
    assert!(err(Scatter {
        x: &p.x,
        y: &p.y[..5],
        classes: &classes,
        ..Default::default()
    })
    .contains("all must be equal"));
    let nan = vec![f64::NAN; n];
    assert!(err(Scatter {
        x: &nan,
        y: &p.y,
        classes: &classes,
        ..Default::default()
    })
    .contains("no point has finite"));
    assert!(pca_2d(&data, n, d + 1).is_err());
}

#[test]
fn grouped_bars_with_error_bars() {
    let groups: Vec<String> = ["facies", "salt", "denoise", "picking"]
        .map(String::from)
        .to_vec();
    let (a, sa) = ([0.81, 0.92, 0.75, 0.88], [0.02, 0.01, 0.03, 0.015]);
    let (b, sb) = ([0.78, 0.94, 0.70, 0.90], [0.03, 0.01, 0.02, 0.01]);
    let c = [0.6, 0.8, f64::NAN, 0.7];
    let fig = Bars {
        title: "fine-tuning, 3 seeds".into(),
        y_label: "score (mean ± std)".into(),
        x_label: "task".into(),
        groups: groups.clone(),
        series: vec![
            BarSeries {
                name: "sfm-base",
                mean: &a,
                std: Some(&sa),
            },
            BarSeries {
                name: "sfm-large",
                mean: &b,
                std: Some(&sb),
            },
            BarSeries {
                name: "baseline",
                mean: &c,
                std: None,
            },
        ],
        ..Default::default()
    }
    .render()
    .unwrap();
    check(&fig, "bars", &[BLUE, ORANGE, GREEN]);
    // Negative values.
    let neg = [-0.5, 0.2, 0.1, -0.05];
    Bars {
        groups: groups.clone(),
        series: vec![BarSeries {
            name: "delta",
            mean: &neg,
            std: Some(&sa),
        }],
        ..Default::default()
    }
    .render()
    .unwrap();
    let err = |b: Bars| b.render().unwrap_err().to_string();
    assert!(err(Bars {
        groups: groups.clone(),
        ..Default::default()
    })
    .contains("no series"));
    assert!(err(Bars {
        groups: groups.clone(),
        series: vec![BarSeries {
            name: "x",
            mean: &a[..3],
            std: None
        }],
        ..Default::default()
    })
    .contains("3 means for 4 groups"));
    assert!(err(Bars {
        groups: groups.clone(),
        series: vec![BarSeries {
            name: "x",
            mean: &a,
            std: Some(&neg)
        }],
        ..Default::default()
    })
    .contains("negative standard deviation"));
    let nan = [f64::NAN; 4];
    assert!(err(Bars {
        groups,
        series: vec![BarSeries {
            name: "x",
            mean: &nan,
            std: None
        }],
        ..Default::default()
    })
    .contains("no finite mean"));
}

#[test]
fn figures_are_written_atomically() {
    let d = tmpdir("atomic");
    let x = [0.0, 1.0];
    let c = Curves {
        series: vec![Series::new("s", &x, &x)],
        ..Default::default()
    };
    // A missing folder: an error that names the file, and nothing left behind.
    let e = c.write(&d.join("no/such/dir/x.png")).unwrap_err();
    assert!(format!("{e:#}").contains("x.png"), "{e:#}");
    c.write(&d.join("x.png")).unwrap();
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
    std::fs::remove_dir_all(&d).ok();
}
