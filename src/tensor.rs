//! `Tensor`: a contiguous n-dimensional array on one device.
//!
//! There are no strided views: every tensor is dense and row-major, as in llm.c.
//! The storage enum has one variant per backend (as in candle); `dtype` is kept
//! beside it so that shape and type checks never have to look inside the storage.

use crate::backend::cuda::CudaStorage;
use crate::backend::Device;
use anyhow::{bail, Result};
use half::bf16;

/// Element types. F32 and BF16 carry activations and weights; I32 carries class labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    BF16,
    I32,
}

impl DType {
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::BF16 => 2,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::BF16 => "bf16",
            DType::I32 => "i32",
        }
    }
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::BF16)
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Host-side buffers, one variant per dtype.
#[derive(Clone, Debug)]
pub enum CpuStorage {
    F32(Vec<f32>),
    BF16(Vec<bf16>),
    I32(Vec<i32>),
}

impl CpuStorage {
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::I32(_) => DType::I32,
        }
    }
    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::BF16(v) => v.len(),
            CpuStorage::I32(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn zeros(dtype: DType, n: usize) -> Self {
        match dtype {
            DType::F32 => CpuStorage::F32(vec![0.0; n]),
            DType::BF16 => CpuStorage::BF16(vec![bf16::ZERO; n]),
            DType::I32 => CpuStorage::I32(vec![0; n]),
        }
    }
}

#[derive(Debug)]
pub enum Storage {
    Cpu(CpuStorage),
    Cuda(CudaStorage),
}

/// A dense row-major tensor.
#[derive(Debug)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub storage: Storage,
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn check_len(shape: &[usize], len: usize) -> Result<()> {
    if numel(shape) != len {
        bail!(
            "shape {:?} needs {} elements but {} were given",
            shape,
            numel(shape),
            len
        );
    }
    Ok(())
}

impl Tensor {
    pub fn from_cpu(shape: &[usize], data: CpuStorage) -> Result<Self> {
        check_len(shape, data.len())?;
        crate::backend::counters::count_allocation();
        Ok(Tensor {
            shape: shape.to_vec(),
            dtype: data.dtype(),
            storage: Storage::Cpu(data),
        })
    }
    pub fn from_f32(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        Self::from_cpu(shape, CpuStorage::F32(data))
    }
    pub fn from_bf16(shape: &[usize], data: Vec<bf16>) -> Result<Self> {
        Self::from_cpu(shape, CpuStorage::BF16(data))
    }
    pub fn from_i32(shape: &[usize], data: Vec<i32>) -> Result<Self> {
        Self::from_cpu(shape, CpuStorage::I32(data))
    }
    pub fn scalar_f32(v: f32) -> Self {
        crate::backend::counters::count_allocation();
        Tensor {
            shape: vec![],
            dtype: DType::F32,
            storage: Storage::Cpu(CpuStorage::F32(vec![v])),
        }
    }

    /// A zero-filled tensor on `device`.
    pub fn zeros(shape: &[usize], dtype: DType, device: &Device) -> Result<Self> {
        let n = numel(shape);
        crate::backend::counters::count_allocation();
        let storage = match device {
            Device::Cpu => Storage::Cpu(CpuStorage::zeros(dtype, n)),
            Device::Cuda(dev) => Storage::Cuda(dev.zeros(dtype, n)?),
        };
        Ok(Tensor {
            shape: shape.to_vec(),
            dtype,
            storage,
        })
    }

    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn device(&self) -> Device {
        match &self.storage {
            Storage::Cpu(_) => Device::Cpu,
            Storage::Cuda(s) => Device::Cuda(s.backend.clone()),
        }
    }
    pub fn is_cpu(&self) -> bool {
        matches!(self.storage, Storage::Cpu(_))
    }

    /// The same data under another shape with the same element count.
    pub fn reshape(mut self, shape: &[usize]) -> Result<Self> {
        if numel(shape) != self.numel() {
            bail!(
                "cannot reshape {:?} ({} elements) to {:?} ({} elements)",
                self.shape,
                self.numel(),
                shape,
                numel(shape)
            );
        }
        self.shape = shape.to_vec();
        Ok(self)
    }

    /// Copies the tensor to `device` (a clone when it is already there).
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        crate::backend::counters::count_allocation();
        let storage = match (&self.storage, device) {
            (Storage::Cpu(c), Device::Cpu) => Storage::Cpu(c.clone()),
            (Storage::Cpu(c), Device::Cuda(dev)) => Storage::Cuda(dev.upload(c)?),
            (Storage::Cuda(g), Device::Cpu) => Storage::Cpu(g.download()?),
            (Storage::Cuda(g), Device::Cuda(dev)) => {
                if std::sync::Arc::ptr_eq(&g.backend, dev) {
                    Storage::Cuda(g.try_clone()?)
                } else {
                    Storage::Cuda(dev.upload(&g.download()?)?)
                }
            }
        };
        Ok(Tensor {
            shape: self.shape.clone(),
            dtype: self.dtype,
            storage,
        })
    }

    pub fn try_clone(&self) -> Result<Self> {
        self.to_device(&self.device())
    }

    /// Host copy of the values as f32 (bf16 widened exactly; i32 converted).
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        crate::backend::counters::count_host_sync();
        let host;
        let c = match &self.storage {
            Storage::Cpu(c) => c,
            Storage::Cuda(g) => {
                host = g.download()?;
                &host
            }
        };
        Ok(match c {
            CpuStorage::F32(v) => v.clone(),
            CpuStorage::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
            CpuStorage::I32(v) => v.iter().map(|&x| x as f32).collect(),
        })
    }

    pub fn to_vec_i32(&self) -> Result<Vec<i32>> {
        match self.to_device(&Device::Cpu)?.storage {
            Storage::Cpu(CpuStorage::I32(v)) => Ok(v),
            _ => bail!("expected an i32 tensor, found {}", self.dtype),
        }
    }

    /// Converts between f32 and bf16 (round to nearest even), on the host.
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        if dtype == self.dtype {
            return self.try_clone();
        }
        let device = self.device();
        let v = self.to_vec_f32()?;
        let c = match dtype {
            DType::F32 => CpuStorage::F32(v),
            DType::BF16 => CpuStorage::BF16(
                v.into_iter()
                    .map(crate::backend::cpu::f32_to_bf16)
                    .collect(),
            ),
            DType::I32 => bail!("conversion to i32 is not supported; labels are made as i32"),
        };
        Tensor::from_cpu(&self.shape, c)?.to_device(&device)
    }

    pub fn cpu(&self) -> Result<&CpuStorage> {
        match &self.storage {
            Storage::Cpu(c) => Ok(c),
            Storage::Cuda(_) => bail!("expected a CPU tensor, found one on CUDA"),
        }
    }
    pub fn cpu_mut(&mut self) -> Result<&mut CpuStorage> {
        match &mut self.storage {
            Storage::Cpu(c) => Ok(c),
            Storage::Cuda(_) => bail!("expected a CPU tensor, found one on CUDA"),
        }
    }
    pub fn f32s(&self) -> Result<&[f32]> {
        match self.cpu()? {
            CpuStorage::F32(v) => Ok(v),
            other => bail!("expected f32 data, found {}", other.dtype()),
        }
    }
    pub fn f32s_mut(&mut self) -> Result<&mut [f32]> {
        match self.cpu_mut()? {
            CpuStorage::F32(v) => Ok(v),
            other => bail!("expected f32 data, found {}", other.dtype()),
        }
    }
    pub fn i32s(&self) -> Result<&[i32]> {
        match self.cpu()? {
            CpuStorage::I32(v) => Ok(v),
            other => bail!("expected i32 data, found {}", other.dtype()),
        }
    }
}
