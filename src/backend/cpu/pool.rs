//! The CPU backend's caching allocator: buffers of dropped tensors are kept by (dtype, length)
//! and handed out again, so a training step whose shapes repeat allocates nothing once the
//! first step has run. One cache per thread (the thread that drops a tensor keeps its buffer;
//! no lock, and threads never take each other's buffers). Each is bounded: at most
//! [`PER_SIZE`] buffers of one size and an eighth of the machine's memory (at most 2 GiB) in
//! all; beyond that, dropped buffers go back to the system.

use crate::backend::counters;
use crate::tensor::{CpuStorage, DType};
use half::bf16;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

struct Pool {
    free: HashMap<(DType, usize), Vec<CpuStorage>>,
    bytes: usize,
    limit: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool {
        free: HashMap::new(),
        bytes: 0,
        limit: limit(),
    });
}

/// The per-thread cache bound (read once per process).
fn limit() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(default_limit)
}

fn default_limit() -> usize {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<usize>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(8 << 30);
    (total / 8).min(2 << 30)
}

/// Free buffers kept per (dtype, length).
pub const PER_SIZE: usize = 1024;

fn bytes_of(dtype: DType, n: usize) -> usize {
    n * dtype.size_bytes()
}

/// A zero-filled buffer of `n` elements, from the cache when one of that size is free (a miss
/// counts as one allocation in `counters`).
pub fn take_zeroed(dtype: DType, n: usize) -> CpuStorage {
    if let Some(mut c) = cached(dtype, n) {
        match &mut c {
            CpuStorage::F32(v) => v.fill(0.0),
            CpuStorage::BF16(v) => v.fill(bf16::ZERO),
            CpuStorage::I32(v) => v.fill(0),
        }
        return c;
    }
    counters::count_allocation();
    CpuStorage::zeros(dtype, n)
}

/// A free buffer of `n` elements from this thread's cache, as it was left.
fn cached(dtype: DType, n: usize) -> Option<CpuStorage> {
    if n == 0 {
        return None;
    }
    POOL.try_with(|p| {
        let mut p = p.borrow_mut();
        let c = p.free.get_mut(&(dtype, n)).and_then(|v| v.pop());
        if c.is_some() {
            p.bytes -= bytes_of(dtype, n);
        }
        c
    })
    .ok()
    .flatten()
}

/// A buffer of `n` elements whose contents the caller overwrites (`Backend::alloc`): from the
/// cache without clearing it when one of that size is free. Debug builds (the tests) poison
/// it instead, NaN for floats and `i32::MIN`, as the GPU's caching pool hands out stale
/// memory: an op that reads what it was meant to write shows up on the CPU too.
pub fn take_unset(dtype: DType, n: usize) -> CpuStorage {
    #[allow(unused_mut)]
    let mut c = cached(dtype, n).unwrap_or_else(|| {
        counters::count_allocation();
        CpuStorage::zeros(dtype, n)
    });
    #[cfg(debug_assertions)]
    match &mut c {
        CpuStorage::F32(v) => v.fill(f32::NAN),
        CpuStorage::BF16(v) => v.fill(bf16::NAN),
        CpuStorage::I32(v) => v.fill(i32::MIN),
    }
    c
}

/// f32 scratch of an op (an im2col matrix, say) from this thread's cache, given back to it when
/// dropped. Its contents are unspecified, as [`take_unset`]'s (NaN in debug builds): the op
/// writes before it reads.
pub struct Scratch(Vec<f32>);

impl Scratch {
    pub fn unset(n: usize) -> Scratch {
        match take_unset(DType::F32, n) {
            CpuStorage::F32(v) => Scratch(v),
            _ => unreachable!("take_unset returns the dtype it is asked for"),
        }
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        give_back(CpuStorage::F32(std::mem::take(&mut self.0)));
    }
}

/// A copy of `src`'s elements `start .. start + len` in a buffer from the cache.
pub fn take_copy(src: &CpuStorage, start: usize, len: usize) -> CpuStorage {
    let mut c = take_zeroed(src.dtype(), len);
    let r = start..start + len;
    match (&mut c, src) {
        (CpuStorage::F32(d), CpuStorage::F32(s)) => d.copy_from_slice(&s[r]),
        (CpuStorage::BF16(d), CpuStorage::BF16(s)) => d.copy_from_slice(&s[r]),
        (CpuStorage::I32(d), CpuStorage::I32(s)) => d.copy_from_slice(&s[r]),
        _ => unreachable!("take_zeroed returns the source's dtype"),
    }
    c
}

/// Keeps a dropped tensor's buffer for reuse (or frees it when the cache is full).
pub fn give_back(c: CpuStorage) {
    let (dtype, n) = (c.dtype(), c.len());
    if n == 0 {
        return;
    }
    // During thread exit the cache may be gone already; the buffer is then simply freed.
    let _ = POOL.try_with(|p| {
        let mut p = p.borrow_mut();
        let b = bytes_of(dtype, n);
        if p.bytes + b <= p.limit {
            let list = p.free.entry((dtype, n)).or_default();
            if list.len() < PER_SIZE {
                list.push(c);
                p.bytes += b;
            }
        }
    });
}

/// Bytes held by this thread's cache now.
pub fn cached_bytes() -> usize {
    POOL.try_with(|p| p.borrow().bytes).unwrap_or(0)
}
