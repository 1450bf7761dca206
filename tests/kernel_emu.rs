//! Runs tools/cuda_emu: the engine, matmul, attention, SFM-head, wav2vec2-objective and conv1d
//! weight-gradient kernels, the emulator's own tensor-core operations and the tensor-core matmul
//! at small odd shapes executed on the CPU under a small emulation of the CUDA execution
//! model and compared with double loops. It checks kernel logic where there is no GPU; without
//! g++ it is reported as skipped (a failure under SEISFUSE_REQUIRE_EMU).

mod common;

#[test]
fn kernels_match_double_loops_under_cpu_emulation() {
    // run.sh compiles with g++ itself ($CXX does not apply).
    let ok = std::process::Command::new("g++")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        common::skip(
            "kernels_match_double_loops_under_cpu_emulation",
            common::Need::Emu,
            "no g++ for tools/cuda_emu",
        );
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/cuda_emu/run.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .output()
        .expect("run tools/cuda_emu/run.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "kernel emulation failed:\n{text}");
    assert!(
        text.contains("attention dqkv")
            && text.contains("matmul")
            && text.contains("contrastive dq")
            && text.contains("codevector backward dcode")
            && text.contains("conv1d dw"),
        "the attention, matmul, wav2vec2 objective and conv1d weight-gradient cases ran"
    );
    assert!(
        text.contains("attention bf16 dqkv") && text.contains("adamw bf16 copy"),
        "the bf16 instantiations ran (bf16_ops.cpp)"
    );
    assert!(
        text.contains("tc units failures: 0") && text.contains("matmul_tc B2 130x136x72"),
        "the emulator's tensor-core unit tests and the tensor-core matmul ran (tc_units, tc_matmul)"
    );
}
