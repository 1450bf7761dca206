//! Launching a kernel: arguments as plain values and raw device pointers (llm.c style), the
//! kernel name recorded for the profiler, and launch errors turned into `Result`s.

use super::{CudaBackend, CudaBuf};
use crate::tensor::DType;
use anyhow::{anyhow, bail, Result};
use cudarc::driver::{DevicePtr, LaunchConfig, PushKernelArg};

/// One kernel argument.
#[derive(Clone, Copy, Debug)]
pub enum KArg {
    Ptr(u64),
    I64(i64),
    I32(i32),
    U32(u32),
    U64(u64),
    F32(f32),
}

impl CudaBuf {
    /// The raw device address (the backend runs everything on one stream, so no events).
    pub fn ptr(&self, b: &CudaBackend) -> u64 {
        let s = &b.stream;
        match self {
            CudaBuf::F32(x) => x.device_ptr(s).0,
            CudaBuf::BF16(x) => x.device_ptr(s).0,
            CudaBuf::I32(x) => x.device_ptr(s).0,
        }
    }
    pub fn len(&self) -> usize {
        match self {
            CudaBuf::F32(x) => x.len(),
            CudaBuf::BF16(x) => x.len(),
            CudaBuf::I32(x) => x.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn dtype(&self) -> DType {
        match self {
            CudaBuf::F32(_) => DType::F32,
            CudaBuf::BF16(_) => DType::BF16,
            CudaBuf::I32(_) => DType::I32,
        }
    }
}

/// The kernel name for a float dtype: `{base}_f32` or `{base}_bf16`.
#[macro_export]
macro_rules! kname {
    ($base:literal, $dtype:expr) => {
        match $dtype {
            $crate::tensor::DType::F32 => concat!($base, "_f32"),
            $crate::tensor::DType::BF16 => concat!($base, "_bf16"),
            d => anyhow::bail!("{} has no {} kernel", $base, d),
        }
    };
}

impl CudaBackend {
    /// Launches `kernel` of `kernels/{file}.cu` on this backend's stream.
    pub fn launch(
        &self,
        file: &'static str,
        kernel: &'static str,
        cfg: LaunchConfig,
        args: &[KArg],
    ) -> Result<()> {
        if cfg.grid_dim.0 == 0 || cfg.grid_dim.1 == 0 || cfg.grid_dim.2 == 0 {
            return Ok(());
        }
        if cfg.grid_dim.1 > 65535 || cfg.grid_dim.2 > 65535 {
            bail!(
                "{kernel}: grid {:?} exceeds the CUDA limit of 65535 in y and z",
                cfg.grid_dim
            );
        }
        let f = self.function(file, kernel)?;
        if cfg.shared_mem_bytes > 48 * 1024 {
            // Above 48 KiB of dynamic shared memory a kernel must opt in.
            f.set_attribute(
                cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                cfg.shared_mem_bytes as i32,
            )
            .map_err(|e| anyhow!("{kernel}: {} B of shared memory refused: {e:?}", cfg.shared_mem_bytes))?;
        }
        let mut lb = self.stream.launch_builder(&f);
        for a in args {
            match a {
                KArg::Ptr(v) | KArg::U64(v) => lb.arg(v),
                KArg::I64(v) => lb.arg(v),
                KArg::I32(v) => lb.arg(v),
                KArg::U32(v) => lb.arg(v),
                KArg::F32(v) => lb.arg(v),
            };
        }
        self.profiler
            .run(&self.stream, kernel, || {
                unsafe { lb.launch(cfg) }.map(|_| ())
            })
            .map_err(|e| anyhow!("{e:#} (kernels/{file}.cu)"))
    }
}
