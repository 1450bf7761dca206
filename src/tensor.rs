//! `Tensor`: a dense row-major view of a buffer on one device.
//!
//! A tensor is a shape and a dtype over a range of a shared buffer (`Arc<Storage>` plus an
//! element offset), as in candle: cloning a tensor, reshaping it, taking rows of it or a
//! parameter's slice of a flat parameter buffer costs no copy. Views are always contiguous
//! (the range `offset .. offset + numel`); there are no strides.
//!
//! CPU buffers sit behind a `RwLock`, so a view can be written while other views of the same
//! buffer exist (the gradient of one parameter inside the flat gradient buffer). Reads and
//! writes go through guards ([`HostRef`], [`HostMut`]); they never block: a buffer that is
//! already locked the other way is an error that names the situation (an op whose output
//! aliases one of its inputs), not a deadlock. CUDA buffers are addressed by pointer and
//! ordered by the device's stream.

use crate::backend::cuda::CudaStorage;
use crate::backend::Device;
use anyhow::{anyhow, bail, Result};
use half::bf16;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

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
    /// Elements `start .. start + len` as a new buffer (from the CPU backend's cache).
    fn range(&self, start: usize, len: usize) -> CpuStorage {
        crate::backend::cpu::pool::take_copy(self, start, len)
    }
}

/// A buffer on one device, shared by every view of it.
#[derive(Debug)]
pub enum Storage {
    Cpu(RwLock<CpuStorage>),
    Cuda(CudaStorage),
}

impl Drop for Storage {
    /// A CPU buffer goes back to the CPU backend's cache (a CUDA buffer goes back to its
    /// device's pool when its `CudaStorage` drops).
    fn drop(&mut self) {
        if let Storage::Cpu(lock) = self {
            if let Ok(c) = lock.get_mut() {
                crate::backend::cpu::pool::give_back(std::mem::replace(
                    c,
                    CpuStorage::F32(Vec::new()),
                ));
            }
        }
    }
}

impl Storage {
    /// Wraps a host buffer (made by the caller or taken from the CPU cache).
    fn cpu(c: CpuStorage) -> Arc<Storage> {
        Arc::new(Storage::Cpu(RwLock::new(c)))
    }
    /// Wraps a device buffer (from the device's pool, which counts the real allocations).
    fn cuda(c: CudaStorage) -> Arc<Storage> {
        Arc::new(Storage::Cuda(c))
    }
    /// Elements in the whole buffer.
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(c) => c.read().map(|c| c.len()).unwrap_or(0),
            Storage::Cuda(c) => c.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A dense row-major tensor: `shape` and `dtype` over elements `offset .. offset + numel` of a
/// shared buffer. `Clone` makes another view of the same buffer; [`Tensor::try_clone`] copies.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub dtype: DType,
    storage: Arc<Storage>,
    offset: usize,
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

/// Element types a CPU buffer can be read as.
pub trait HostElem: Sized + Copy {
    const DTYPE: DType;
    fn slice(c: &CpuStorage) -> Option<&[Self]>;
    fn slice_mut(c: &mut CpuStorage) -> Option<&mut [Self]>;
}

macro_rules! host_elem {
    ($t:ty, $variant:ident) => {
        impl HostElem for $t {
            const DTYPE: DType = DType::$variant;
            fn slice(c: &CpuStorage) -> Option<&[Self]> {
                match c {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn slice_mut(c: &mut CpuStorage) -> Option<&mut [Self]> {
                match c {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}
host_elem!(f32, F32);
host_elem!(bf16, BF16);
host_elem!(i32, I32);

/// A CPU view's elements as `T` behind a lock guard `G`: derefs to `&[T]`, and through a
/// write guard to `&mut [T]`.
pub struct HostGuard<T: HostElem, G> {
    guard: G,
    start: usize,
    len: usize,
    _t: PhantomData<T>,
}

/// Read access to a CPU view's elements (derefs to `&[T]`).
pub type HostRef<'a, T> = HostGuard<T, RwLockReadGuard<'a, CpuStorage>>;

/// Write access to a CPU view's elements (derefs to `&mut [T]`).
pub type HostMut<'a, T> = HostGuard<T, RwLockWriteGuard<'a, CpuStorage>>;

impl<T: HostElem, G: std::ops::Deref<Target = CpuStorage>> std::ops::Deref for HostGuard<T, G> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // The dtype was checked when the guard was made and cannot change while it is held.
        let all = T::slice(&self.guard).unwrap_or(&[]);
        &all[self.start..self.start + self.len]
    }
}

impl<T: HostElem, G: std::ops::DerefMut<Target = CpuStorage>> std::ops::DerefMut
    for HostGuard<T, G>
{
    fn deref_mut(&mut self) -> &mut [T] {
        let (start, len) = (self.start, self.len);
        let all = T::slice_mut(&mut self.guard).unwrap_or(&mut []);
        &mut all[start..start + len]
    }
}

/// A float CPU view's values as f32: borrowed when stored as f32, widened when bf16.
pub enum HostF32<'a> {
    Borrowed(HostRef<'a, f32>),
    Owned(Vec<f32>),
}

impl std::ops::Deref for HostF32<'_> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            HostF32::Borrowed(r) => r,
            HostF32::Owned(v) => v,
        }
    }
}

impl HostF32<'_> {
    pub fn into_owned(self) -> Vec<f32> {
        match self {
            HostF32::Borrowed(r) => r.to_vec(),
            HostF32::Owned(v) => v,
        }
    }
}

const ALIASED: &str = "this tensor's buffer is in use the other way (an op's output shares its buffer with one of its inputs); copy the input first";

impl Tensor {
    pub fn from_cpu(shape: &[usize], data: CpuStorage) -> Result<Self> {
        check_len(shape, data.len())?;
        Ok(Tensor {
            shape: shape.to_vec(),
            dtype: data.dtype(),
            storage: Storage::cpu(data),
            offset: 0,
        })
    }
    /// A tensor over a whole CUDA buffer.
    pub fn from_cuda(shape: &[usize], data: CudaStorage) -> Result<Self> {
        check_len(shape, data.len())?;
        Ok(Tensor {
            shape: shape.to_vec(),
            dtype: data.dtype(),
            storage: Storage::cuda(data),
            offset: 0,
        })
    }
    pub fn from_f32(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        crate::backend::counters::count_upload();
        Self::from_cpu(shape, CpuStorage::F32(data))
    }
    pub fn from_bf16(shape: &[usize], data: Vec<bf16>) -> Result<Self> {
        crate::backend::counters::count_upload();
        Self::from_cpu(shape, CpuStorage::BF16(data))
    }
    pub fn from_i32(shape: &[usize], data: Vec<i32>) -> Result<Self> {
        crate::backend::counters::count_upload();
        Self::from_cpu(shape, CpuStorage::I32(data))
    }
    pub fn scalar_f32(v: f32) -> Self {
        Tensor {
            shape: vec![],
            dtype: DType::F32,
            storage: Storage::cpu(CpuStorage::F32(vec![v])),
            offset: 0,
        }
    }

    /// A zero-filled tensor on `device`.
    pub fn zeros(shape: &[usize], dtype: DType, device: &Device) -> Result<Self> {
        let n = numel(shape);
        let storage = match device {
            Device::Cpu => Storage::cpu(crate::backend::cpu::pool::take_zeroed(dtype, n)),
            Device::Cuda(dev) => Storage::cuda(dev.zeros(dtype, n)?),
        };
        Ok(Tensor {
            shape: shape.to_vec(),
            dtype,
            storage,
            offset: 0,
        })
    }

    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn device(&self) -> Device {
        match &*self.storage {
            Storage::Cpu(_) => Device::Cpu,
            Storage::Cuda(s) => Device::Cuda(s.backend.clone()),
        }
    }
    pub fn is_cpu(&self) -> bool {
        matches!(*self.storage, Storage::Cpu(_))
    }
    /// The buffer this tensor views.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }
    /// Where this view starts in its buffer, in elements.
    pub fn offset(&self) -> usize {
        self.offset
    }
    /// True when both tensors view the same buffer (whether or not their ranges overlap).
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }
    /// True when this view covers its whole buffer.
    pub fn is_whole(&self) -> bool {
        self.offset == 0 && self.numel() == self.storage.len()
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

    /// A view of `numel(shape)` elements starting `offset` elements into this view.
    pub fn view(&self, offset: usize, shape: &[usize]) -> Result<Self> {
        let n = numel(shape);
        let end = offset.checked_add(n);
        if end.is_none_or(|e| e > self.numel()) {
            bail!(
                "view of {n} elements at offset {offset} does not fit in a tensor of shape {:?}",
                self.shape
            );
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            dtype: self.dtype,
            storage: self.storage.clone(),
            offset: self.offset + offset,
        })
    }

    /// Rows `start .. start + len` of the first axis, as a view.
    pub fn narrow(&self, start: usize, len: usize) -> Result<Self> {
        let Some((&rows, rest)) = self.shape.split_first() else {
            bail!("narrow: a scalar has no rows");
        };
        if start.checked_add(len).is_none_or(|e| e > rows) {
            bail!(
                "narrow: rows {start}..{} are outside a tensor of shape {:?}",
                start.saturating_add(len),
                self.shape
            );
        }
        let row = numel(rest);
        let mut shape = self.shape.clone();
        shape[0] = len;
        self.view(start * row, &shape)
    }

    /// Copies the tensor to `device` (a copy of this view's elements, also on the same device).
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        let n = self.numel();
        let storage = match (&*self.storage, device) {
            (Storage::Cpu(_), Device::Cpu) => Storage::cpu(self.read_cpu()?.clone()),
            (Storage::Cpu(c), Device::Cuda(dev)) => {
                let c = c.try_read().map_err(|_| anyhow!(ALIASED))?;
                Storage::cuda(dev.upload_range(&c, self.offset, n)?)
            }
            (Storage::Cuda(g), Device::Cpu) => Storage::cpu(g.download_range(self.offset, n)?),
            (Storage::Cuda(g), Device::Cuda(dev)) => {
                if Arc::ptr_eq(&g.backend, dev) {
                    Storage::cuda(g.clone_range(self.offset, n)?)
                } else {
                    Storage::cuda(dev.upload(&g.download_range(self.offset, n)?)?)
                }
            }
        };
        Ok(Tensor {
            shape: self.shape.clone(),
            dtype: self.dtype,
            storage,
            offset: 0,
        })
    }

    /// A copy of this view's elements in a new buffer on the same device.
    pub fn try_clone(&self) -> Result<Self> {
        self.to_device(&self.device())
    }

    /// This CPU view's elements as a new host buffer.
    fn read_cpu(&self) -> Result<CpuStorage> {
        match &*self.storage {
            Storage::Cpu(c) => {
                let g = c.try_read().map_err(|_| anyhow!(ALIASED))?;
                Ok(g.range(self.offset, self.numel()))
            }
            Storage::Cuda(_) => bail!("expected a CPU tensor, found one on CUDA"),
        }
    }

    /// Host copy of the values as f32 (bf16 widened exactly; i32 converted).
    /// The view's values on the host: a host sync (`backend::counters`) on any device, so
    /// that the CPU's counts show the reads a GPU would wait for.
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        let c = match &*self.storage {
            Storage::Cpu(_) => {
                crate::backend::counters::count_host_sync();
                return Ok(self.host_f32()?.to_vec());
            }
            Storage::Cuda(g) => g.download_range(self.offset, self.numel())?,
        };
        Ok(match c {
            CpuStorage::F32(v) => v,
            CpuStorage::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
            CpuStorage::I32(v) => v.iter().map(|&x| x as f32).collect(),
        })
    }

    /// As [`Self::to_vec_f32`], for i32 views.
    pub fn to_vec_i32(&self) -> Result<Vec<i32>> {
        if self.is_cpu() {
            crate::backend::counters::count_host_sync();
        }
        match self.to_device(&Device::Cpu)?.read_cpu()? {
            CpuStorage::I32(v) => Ok(v),
            _ => bail!("expected an i32 tensor, found {}", self.dtype),
        }
    }

    /// This view's elements as a host buffer of its dtype (downloaded from a GPU).
    pub fn to_cpu_storage(&self) -> Result<CpuStorage> {
        match &*self.storage {
            Storage::Cpu(_) => self.read_cpu(),
            Storage::Cuda(g) => g.download_range(self.offset, self.numel()),
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

    /// Read access to a CPU view's elements as `T` (which must be its dtype).
    pub fn host<T: HostElem>(&self) -> Result<HostRef<'_, T>> {
        self.host_guard(|c| c.try_read().ok())
    }

    /// Write access to a CPU view's elements as `T` (which must be its dtype).
    pub fn host_mut<T: HostElem>(&mut self) -> Result<HostMut<'_, T>> {
        self.host_guard(|c| c.try_write().ok())
    }

    /// A CPU view's elements as `T` behind the guard `lock` takes (None: the buffer is
    /// borrowed the other way).
    fn host_guard<'a, T: HostElem, G>(
        &'a self,
        lock: impl FnOnce(&'a RwLock<CpuStorage>) -> Option<G>,
    ) -> Result<HostGuard<T, G>> {
        if self.dtype != T::DTYPE {
            bail!("expected {} data, found {}", T::DTYPE, self.dtype);
        }
        match &*self.storage {
            Storage::Cpu(c) => Ok(HostGuard {
                guard: lock(c).ok_or_else(|| anyhow!(ALIASED))?,
                start: self.offset,
                len: self.numel(),
                _t: PhantomData,
            }),
            Storage::Cuda(_) => bail!("expected a CPU tensor, found one on CUDA"),
        }
    }

    pub fn f32s(&self) -> Result<HostRef<'_, f32>> {
        self.host::<f32>()
    }
    pub fn f32s_mut(&mut self) -> Result<HostMut<'_, f32>> {
        self.host_mut::<f32>()
    }
    pub fn i32s(&self) -> Result<HostRef<'_, i32>> {
        self.host::<i32>()
    }

    /// A float CPU view's values as f32, borrowed when stored as f32.
    pub fn host_f32(&self) -> Result<HostF32<'_>> {
        match self.dtype {
            DType::F32 => Ok(HostF32::Borrowed(self.f32s()?)),
            DType::BF16 => Ok(HostF32::Owned(
                self.host::<bf16>()?.iter().map(|x| x.to_f32()).collect(),
            )),
            DType::I32 => Ok(HostF32::Owned(
                self.i32s()?.iter().map(|&x| x as f32).collect(),
            )),
        }
    }

    /// Overwrites a float CPU view with `v` (rounded to bf16 when the view is bf16).
    pub fn write_f32(&mut self, v: &[f32]) -> Result<()> {
        if v.len() != self.numel() {
            bail!(
                "writing {} values into a tensor of shape {:?}",
                v.len(),
                self.shape
            );
        }
        match self.dtype {
            DType::F32 => self.f32s_mut()?.copy_from_slice(v),
            DType::BF16 => {
                let mut h = self.host_mut::<bf16>()?;
                for (d, &s) in h.iter_mut().zip(v) {
                    *d = crate::backend::cpu::f32_to_bf16(s);
                }
            }
            DType::I32 => bail!("write_f32: the tensor holds i32 labels"),
        }
        Ok(())
    }
}
