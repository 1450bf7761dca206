//! Devices: the CPU reference backend and the CUDA backend, and how one is chosen.

pub mod api;
pub mod caching;
pub mod counters;
pub mod cpu;
pub mod cuda;
pub mod record;
pub mod variants;

pub use api::Backend;

use anyhow::{bail, Result};
use std::sync::Arc;

/// Where a tensor lives and where its ops run.
#[derive(Clone)]
pub enum Device {
    Cpu,
    Cuda(Arc<cuda::CudaBackend>),
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(b) => write!(f, "cuda:{}", b.ordinal),
        }
    }
}

impl PartialEq for Device {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Device::Cpu, Device::Cpu) => true,
            (Device::Cuda(a), Device::Cuda(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Device {
    /// The implementation of every op on this device.
    pub fn backend(&self) -> &dyn Backend {
        match self {
            Device::Cpu => &cpu::CPU,
            Device::Cuda(b) => &**b,
        }
    }
    /// The backend, for running one op: on the CPU the call counts as one launch
    /// (`counters`); CUDA counts its real kernel launches as they are made.
    pub fn run(&self) -> &dyn Backend {
        if !self.is_cuda() {
            counters::count_launch();
            if record::active() {
                return &record::RECORDER;
            }
        }
        self.backend()
    }
    pub fn is_cuda(&self) -> bool {
        matches!(self, Device::Cuda(_))
    }
    pub fn name(&self) -> String {
        format!("{self:?}")
    }
}

/// What the user asked for with `--device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceRequest {
    Auto,
    Cpu,
    Cuda(usize),
}

impl std::str::FromStr for DeviceRequest {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "auto" => return Ok(DeviceRequest::Auto),
            "cpu" => return Ok(DeviceRequest::Cpu),
            "cuda" | "gpu" => return Ok(DeviceRequest::Cuda(0)),
            _ => {}
        }
        if let Some(n) = t.strip_prefix("cuda:") {
            if let Ok(i) = n.parse::<usize>() {
                return Ok(DeviceRequest::Cuda(i));
            }
        }
        bail!("unknown device '{s}': expected auto, cpu, cuda or cuda:N (N = GPU index, from 0)")
    }
}

/// Turns a request into a device. `Auto` picks CUDA only when the driver, NVRTC and a GPU
/// are all present, and says on stderr which it chose and why.
pub fn select(req: DeviceRequest) -> Result<Device> {
    match req {
        DeviceRequest::Cpu => Ok(Device::Cpu),
        DeviceRequest::Cuda(i) => cuda::CudaBackend::get(i).map(Device::Cuda).map_err(|e| {
            e.context(format!(
                "--device cuda:{i} cannot be used; run with --device cpu (or auto) instead"
            ))
        }),
        DeviceRequest::Auto => match cuda::CudaBackend::get(0) {
            Ok(b) => {
                eprintln!("seisfuse: using cuda:0 ({})", b.name);
                Ok(Device::Cuda(b))
            }
            Err(e) => {
                eprintln!("seisfuse: using the CPU ({e:#})");
                Ok(Device::Cpu)
            }
        },
    }
}
