//! The tensor-core kernels' machine code, without a GPU: each is compiled by NVRTC to a CUBIN for
//! sm_80 and sm_90 and disassembled with nvdisasm (src/backend/cuda/sass.rs); every tensor-core
//! kernel must contain mma (HMMA), ldmatrix (LDSM) and cp.async (LDGSTS) instructions and spill
//! nothing (matmul_tf32_tn has no ldmatrix: see [`NO_LDMATRIX`]); conv1d_tc's kernels stage their tiles with plain loads (Toeplitz windows at any
//! alignment) and must contain no LDGSTS. Reported as skipped (common::skip) when NVRTC or nvdisasm is missing, a failure
//! under SEISFUSE_REQUIRE_NVRTC (CI).

mod common;
use common::{skip, Need};
use seisfuse::backend::cuda::{nvrtc::Nvrtc, sass, KERNEL_SOURCES};

/// Kernel files whose every kernel runs on tensor cores, but for [`NOT_TENSOR_CORE`].
const TENSOR_CORE_FILES: &[&str] = &["matmul_tc", "matmul_tf32", "attention_tc", "conv1d_tc"];
/// Helper kernels in those files without mma (checked for spills only): the attention
/// backward's delta = rowsum(dO ∘ O) pre-pass.
const NOT_TENSOR_CORE: &[&str] = &["attention_tc_backward_delta"];
/// Tensor-core kernels that load global memory with plain loads, not cp.async: conv1d_tc's
/// input windows start at any element (the Toeplitz operand), its weights are read
/// flip-transposed for the input gradient.
const NO_CP_ASYNC: &[&str] = &["conv1d_tc_forward", "conv1d_tc_backward_weight_partial"];

/// Tensor-core kernels without ldmatrix: matmul_tf32's tn layout has both operands stored
/// k-major, whose f32 fragments come from 32-bit shared loads (ldmatrix.trans moves 16-bit
/// elements only).
const NO_LDMATRIX: &[&str] = &["matmul_tf32_tn"];

#[test]
fn tensor_core_kernels_use_mma_ldmatrix_cp_async_and_do_not_spill() {
    const TEST: &str = "tensor_core_kernels_use_mma_ldmatrix_cp_async_and_do_not_spill";
    let nvrtc = match Nvrtc::global() {
        Ok(n) => n,
        Err(e) => return skip(TEST, Need::Nvrtc, format!("no NVRTC ({e:#})")),
    };
    let Some(nvdisasm) = sass::find_nvdisasm() else {
        return skip(
            TEST,
            Need::Nvrtc,
            "no nvdisasm (pip install nvidia-cuda-nvdisasm)",
        );
    };
    let mut checked = 0;
    for arch in [80u32, 90] {
        for k in KERNEL_SOURCES
            .iter()
            .filter(|k| TENSOR_CORE_FILES.contains(&k.name))
        {
            let stats = sass::sass_stats(nvrtc, &nvdisasm, k, arch).unwrap();
            assert!(
                !stats.is_empty(),
                "{} for sm_{arch}: no kernels found",
                k.file
            );
            for s in stats {
                println!(
                    "sm_{arch} {}: HMMA {} HGMMA {} LDSM {} LDGSTS {} regs {:?} spills {}/{} B",
                    s.name,
                    s.hmma,
                    s.hgmma,
                    s.ldsm,
                    s.ldgsts,
                    s.registers,
                    s.spill_stores,
                    s.spill_loads
                );
                assert!(
                    s.registers.is_some(),
                    "sm_{arch} {}: no ptxas report",
                    s.name
                );
                assert_eq!(
                    (s.spill_stores, s.spill_loads),
                    (0, 0),
                    "sm_{arch} {}: spills registers",
                    s.name
                );
                if NOT_TENSOR_CORE.contains(&s.name.as_str()) {
                    continue;
                }
                assert!(
                    s.hmma + s.hgmma > 0,
                    "sm_{arch} {}: no tensor-core instruction",
                    s.name
                );
                if NO_LDMATRIX.contains(&s.name.as_str()) {
                    assert_eq!(s.ldsm, 0, "sm_{arch} {}: LDSM not expected", s.name);
                } else {
                    assert!(s.ldsm > 0, "sm_{arch} {}: no LDSM (ldmatrix)", s.name);
                }
                if NO_CP_ASYNC.contains(&s.name.as_str()) {
                    assert_eq!(s.ldgsts, 0, "sm_{arch} {}: LDGSTS not expected", s.name);
                } else {
                    assert!(s.ldgsts > 0, "sm_{arch} {}: no LDGSTS (cp.async)", s.name);
                }
                checked += 1;
            }
        }
    }
    assert_eq!(
        checked, 64,
        "8 matmul_tc, 4 matmul_tf32, 18 attention_tc and 2 conv1d_tc tensor-core kernels for each of sm_80 and sm_90"
    );
}
