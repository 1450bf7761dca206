//! Bad input returns errors that say what is wrong, never panics.

use seisfuse::backend::{select, DeviceRequest};
use seisfuse::ops::{self, AdamWConfig, DropoutKey};
use seisfuse::{DType, Device, Tensor};

fn f(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap()
}

fn msg<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn shape_mismatches_are_errors() {
    assert!(
        msg(ops::matmul(&f(&[3, 4]), &f(&[5, 6]), false, false, None)).contains("inner dimensions")
    );
    assert!(msg(ops::matmul(
        &f(&[2, 3, 4]),
        &f(&[3, 4, 6]),
        false,
        false,
        None
    ))
    .contains("batch"));
    assert!(msg(ops::matmul(&f(&[4]), &f(&[4, 6]), false, false, None)).contains("2 dimensions"));
    assert!(msg(ops::add(&f(&[3]), &f(&[4]))).contains("shapes differ"));
    assert!(msg(ops::bias_add(&f(&[3, 4]), &f(&[3]))).contains("bias"));
    assert!(msg(ops::layer_norm(&f(&[3, 4]), &f(&[3]), &f(&[4]), 1e-5)).contains("shape [4]"));
    assert!(msg(Tensor::from_f32(&[2, 2], vec![1.0; 3])).contains("needs 4"));
    assert!(msg(f(&[6]).reshape(&[4])).contains("cannot reshape"));
    let logits = f(&[3, 5]);
    assert!(msg(ops::cross_entropy(
        &logits,
        &Tensor::from_i32(&[2], vec![0, 1]).unwrap()
    ))
    .contains("3 elements"));
}

#[test]
fn wrong_dtypes_are_errors() {
    let a = f(&[3, 4]);
    let b = a.to_dtype(DType::BF16).unwrap();
    assert!(msg(ops::add(&a, &b)).contains("dtypes differ"));
    let labels = Tensor::from_i32(&[3], vec![0, 1, 2]).unwrap();
    assert!(msg(ops::gelu(&labels)).contains("f32 or bf16"));
    assert!(msg(ops::cross_entropy(&f(&[3, 4]), &f(&[3]))).contains("i32"));
    let mut p = f(&[4]);
    let (mut m, mut v) = (f(&[4]), f(&[4]));
    assert!(msg(ops::adamw_step(
        &mut p,
        &b.reshape(&[12]).unwrap(),
        &mut m,
        &mut v,
        None,
        &AdamWConfig::default(),
        1
    ))
    .contains("must be f32"));
    assert!(msg(ops::dropout(
        &a,
        1.5,
        DropoutKey {
            seed: 0,
            step: 0,
            stream_id: 0
        }
    ))
    .contains("[0, 1)"));
}

#[test]
fn unknown_devices_are_errors() {
    for bad in ["tpu", "cuda:x", "cuda:-1", ""] {
        let e = bad.parse::<DeviceRequest>().unwrap_err();
        assert!(
            format!("{e}").contains("expected auto, cpu, cuda or cuda:N"),
            "{bad}: {e}"
        );
    }
    assert_eq!(
        "cuda:3".parse::<DeviceRequest>().unwrap(),
        DeviceRequest::Cuda(3)
    );
    // A missing GPU is an error, not a panic (on a machine with 1 GPU, cuda:999 still fails).
    let e = select(DeviceRequest::Cuda(999)).expect_err("cuda:999 cannot exist");
    println!("cuda:999 → {e:#}");
    assert!(matches!(select(DeviceRequest::Cpu), Ok(Device::Cpu)));
}

#[test]
fn cli_rejects_bad_device_flag() {
    let exe = env!("CARGO_BIN_EXE_seisfuse");
    let out = std::process::Command::new(exe)
        .args(["--device", "tpu", "doctor"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown device 'tpu'"), "{err}");
}
