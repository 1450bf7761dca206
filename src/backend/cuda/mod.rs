//! The CUDA backend: one context and stream per GPU, kernels compiled by NVRTC at first use
//! and cached on disk, launch wrappers (one file per `kernels/*.cu`), and a kernel profiler.

pub mod adamw;
pub mod attention;
pub mod attention_tc;
pub mod batch_norm;
pub mod cache;
pub mod channels;
pub mod conv1d;
pub mod conv1d_tc;
pub mod conv2d;
pub mod discover;
pub mod dropout;
pub mod elementwise;
pub mod fusion;
pub mod graph;
pub mod launch;
pub mod layer_norm;
pub mod loss;
pub mod matmul;
pub mod matmul_tc;
pub mod matmul_tf32;
pub mod memory;
pub mod nvrtc;
pub mod predict;
pub mod predict_mel;
pub mod profiler;
pub mod reduce;
pub mod relu;
pub mod sass;
pub mod softmax;
pub mod ssim;
pub mod stft_mel;
pub mod tokens;
pub mod upsample;
pub mod wav2vec2;

pub use memory::CudaStorage;

use crate::tensor::DType;
use anyhow::{anyhow, bail, Context, Result};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream, LaunchConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// One kernel file as embedded by build.rs: `kernels/common.cuh` + `kernels/{name}.cu`.
#[derive(Debug)]
pub struct KernelSource {
    pub name: &'static str,
    pub file: &'static str,
    pub source: &'static str,
    /// FNV-1a 64 of `source`; part of the disk-cache key.
    pub hash: u64,
}

include!(concat!(env!("OUT_DIR"), "/kernel_sources.rs"));

/// Every kernel declared in Rust (`kernels!`), file by file.
pub fn all_signatures() -> Vec<&'static launch::KernelSig> {
    [
        adamw::SIGNATURES,
        attention::SIGNATURES,
        attention_tc::SIGNATURES,
        batch_norm::SIGNATURES,
        channels::SIGNATURES,
        conv1d::SIGNATURES,
        conv1d_tc::SIGNATURES,
        conv2d::SIGNATURES,
        dropout::SIGNATURES,
        elementwise::SIGNATURES,
        fusion::SIGNATURES,
        layer_norm::SIGNATURES,
        loss::SIGNATURES,
        matmul::SIGNATURES,
        matmul_tc::SIGNATURES,
        matmul_tf32::SIGNATURES,
        reduce::SIGNATURES,
        relu::SIGNATURES,
        softmax::SIGNATURES,
        ssim::SIGNATURES,
        stft_mel::SIGNATURES,
        tokens::SIGNATURES,
        upsample::SIGNATURES,
        wav2vec2::SIGNATURES,
    ]
    .into_iter()
    .flatten()
    .collect()
}

pub fn kernel_source(name: &str) -> Result<&'static KernelSource> {
    KERNEL_SOURCES
        .iter()
        .find(|k| k.name == name)
        .ok_or_else(|| anyhow!("no kernel file kernels/{name}.cu is embedded in this binary"))
}

/// One GPU: its context, the stream every op runs on, and the modules loaded so far.
pub struct CudaBackend {
    pub ordinal: usize,
    pub name: String,
    pub compute_capability: (i32, i32),
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    /// Kernel handles, looked up once per (file, kernel name): two files may define kernels of
    /// the same name (`transpose_last2_f32` is in channels.cu and in conv1d.cu).
    functions: Mutex<HashMap<(&'static str, &'static str), CudaFunction>>,
    pub profiler: profiler::Profiler,
    /// The caching pool every device buffer comes from, and the pinned upload buffers.
    memory: memory::DeviceMemory,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaBackend(cuda:{} {})", self.ordinal, self.name)
    }
}

/// Why CUDA cannot be used, or `None` when it can (driver, NVRTC and a GPU are present).
pub fn unavailable_reason() -> Option<String> {
    if !discover::driver_present() {
        return Some("no CUDA driver library (libcuda.so) found".into());
    }
    if let Err(e) = nvrtc::Nvrtc::global() {
        return Some(format!("{e:#}"));
    }
    match CudaContext::device_count() {
        Ok(0) => Some("the CUDA driver reports no GPU".into()),
        Ok(_) => None,
        Err(e) => Some(format!("the CUDA driver failed to start: {e:?}")),
    }
}

impl CudaBackend {
    /// The backend of GPU `ordinal`, created on first use and shared afterwards.
    pub fn get(ordinal: usize) -> Result<Arc<Self>> {
        static ALL: OnceLock<Mutex<HashMap<usize, Arc<CudaBackend>>>> = OnceLock::new();
        let all = ALL.get_or_init(|| Mutex::new(HashMap::new()));
        let mut all = all
            .lock()
            .map_err(|_| anyhow!("CUDA backend registry poisoned"))?;
        if let Some(b) = all.get(&ordinal) {
            return Ok(b.clone());
        }
        if let Some(why) = unavailable_reason() {
            bail!("CUDA is not available: {why}");
        }
        let count = CudaContext::device_count().map_err(|e| anyhow!("cuDeviceGetCount: {e:?}"))?;
        if ordinal >= count as usize {
            bail!(
                "cuda:{ordinal} does not exist: this machine has {count} GPU(s), cuda:0 to cuda:{}",
                count - 1
            );
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| anyhow!("creating a context on cuda:{ordinal}: {e:?}"))?;
        // One stream per device: cudarc's per-buffer event tracking only costs time here.
        // SAFETY: every op of this backend runs on `stream`, so ordering is by stream order.
        unsafe { ctx.disable_event_tracking() };
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let compute_capability = ctx.compute_capability().map_err(|e| anyhow!("{e:?}"))?;
        // A stream of our own, never the legacy default stream: it does not synchronise with
        // other streams behind our back, and it can be captured into a CUDA graph.
        let stream = ctx
            .new_stream()
            .map_err(|e| anyhow!("creating a stream on cuda:{ordinal}: {e:?}"))?;
        let memory = memory::DeviceMemory::new(&ctx, &stream);
        let b = Arc::new(CudaBackend {
            ordinal,
            name,
            compute_capability,
            ctx,
            stream,
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
            profiler: profiler::Profiler::default(),
            memory,
        });
        all.insert(ordinal, b.clone());
        Ok(b)
    }

    /// `sm_XY` number for NVRTC.
    pub fn arch(&self) -> u32 {
        (self.compute_capability.0 * 10 + self.compute_capability.1) as u32
    }

    /// The module of `kernels/{file}.cu`, compiled (or read from the disk cache) on first use.
    pub fn module(&self, file: &'static str) -> Result<Arc<CudaModule>> {
        let mut mods = self
            .modules
            .lock()
            .map_err(|_| anyhow!("module cache poisoned"))?;
        if let Some(m) = mods.get(file) {
            return Ok(m.clone());
        }
        let src = kernel_source(file)?;
        let cubin = cache::compiled_cubin(src, self.arch())?;
        let m = self
            .ctx
            .load_module(cudarc::nvrtc::Ptx::from_binary(cubin))
            .map_err(|e| {
                anyhow!(
                    "loading the module of {} on cuda:{}: {e:?}",
                    src.file,
                    self.ordinal
                )
            })?;
        mods.insert(file, m.clone());
        Ok(m)
    }

    /// The handle of `kernel` in `kernels/{file}.cu`, looked up once.
    pub fn function(&self, file: &'static str, kernel: &'static str) -> Result<CudaFunction> {
        if let Some(f) = self
            .functions
            .lock()
            .map_err(|_| anyhow!("kernel handle cache poisoned"))?
            .get(&(file, kernel))
        {
            return Ok(f.clone());
        }
        let f = self
            .module(file)?
            .load_function(kernel)
            .map_err(|e| anyhow!("kernel {kernel} not found in kernels/{file}.cu: {e:?}"))?;
        self.functions
            .lock()
            .map_err(|_| anyhow!("kernel handle cache poisoned"))?
            .insert((file, kernel), f.clone());
        Ok(f)
    }

    pub fn synchronize(&self) -> Result<()> {
        self.refuse_host_wait()?;
        self.stream.synchronize().context("cuStreamSynchronize")?;
        Ok(())
    }

    /// An error while work is being captured into a CUDA graph: the host may not wait then.
    fn refuse_host_wait(&self) -> Result<()> {
        if self.memory.capturing()? {
            bail!(
                "the host waited for the device (a download, a value read back, or a \
                 synchronisation) inside work being captured into a CUDA graph; a captured \
                 step must run without host reads (read results after the replay)"
            );
        }
        Ok(())
    }
}

/// A 1-D launch of `n` threads in blocks of `block`.
pub fn grid_1d(n: usize, block: u32) -> LaunchConfig {
    let blocks = n.div_ceil(block as usize).max(1) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// A launch of `blocks` blocks of `threads` threads (one block per row, channel, plane, …)
/// with `smem` bytes of dynamic shared memory.
pub fn block_per(blocks: usize, threads: u32, smem: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: smem as u32,
    }
}

/// A launch for grid-stride kernels over `n` elements: 256 threads per block and at most
/// 4 × 65535 blocks; each thread's loop covers the elements beyond the grid.
pub fn grid_stride(n: usize) -> LaunchConfig {
    let mut c = grid_1d(n, 256);
    c.grid_dim.0 = c.grid_dim.0.min(65535 * 4);
    c
}

impl CudaBackend {
    /// The device address of a CUDA view's first element; an error for a tensor elsewhere.
    pub fn address(&self, t: &crate::tensor::Tensor) -> Result<u64> {
        match t.storage() {
            crate::tensor::Storage::Cuda(s) if std::ptr::eq(&*s.backend, self) => {
                Ok(s.ptr() + (t.offset() * t.dtype.size_bytes()) as u64)
            }
            _ => bail!(
                "expected a tensor on cuda:{}, found one on {:?}",
                self.ordinal,
                t.device()
            ),
        }
    }
}

impl crate::backend::api::Backend for CudaBackend {
    fn name(&self) -> String {
        format!("cuda:{}", self.ordinal)
    }
    fn alloc(&self, shape: &[usize], dtype: DType) -> Result<crate::tensor::Tensor> {
        self.zeros(shape, dtype)
    }
    fn zeros(&self, shape: &[usize], dtype: DType) -> Result<crate::tensor::Tensor> {
        let me = CudaBackend::get(self.ordinal)?;
        crate::tensor::Tensor::from_cuda(shape, me.zeros(dtype, crate::tensor::numel(shape))?)
    }
    fn fill_zero(&self, t: &mut crate::tensor::Tensor) -> Result<()> {
        let p = self.address(t)?;
        let bytes = t.numel() * t.dtype.size_bytes();
        self.bind()?;
        // SAFETY: `p .. p + bytes` is the view's range inside a live buffer of this context,
        // and the memset is ordered on the stream every op of this backend uses.
        unsafe { cudarc::driver::result::memset_d8_async(p, 0, bytes, self.stream.cu_stream()) }
            .map_err(|e| anyhow!("cuMemsetD8Async: {e:?}"))?;
        crate::backend::counters::count_launch();
        Ok(())
    }
    fn copy(&self, dst: &mut crate::tensor::Tensor, src: &crate::tensor::Tensor) -> Result<()> {
        crate::backend::api::check_copy(dst, src)?;
        let (d, s) = (self.address(dst)?, self.address(src)?);
        let bytes = dst.numel() * dst.dtype.size_bytes();
        self.bind()?;
        // SAFETY: both ranges lie in live buffers of this context; stream-ordered.
        unsafe { cudarc::driver::result::memcpy_dtod_async(d, s, bytes, self.stream.cu_stream()) }
            .map_err(|e| anyhow!("cuMemcpyDtoDAsync: {e:?}"))?;
        crate::backend::counters::count_launch();
        Ok(())
    }
    fn synchronize(&self) -> Result<()> {
        crate::backend::counters::count_host_sync();
        CudaBackend::synchronize(self)
    }
}
