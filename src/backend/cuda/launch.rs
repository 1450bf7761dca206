//! Typed kernel launches.
//!
//! Each `kernels/*.cu` file's kernels are declared once in Rust with [`kernels!`]: a struct per
//! kernel whose fields are the kernel's arguments in order, with their roles and element types.
//! Filling the struct names every argument at the call site, and `launch` checks each tensor
//! (device, dtype, the shared element type `T` of a kernel instantiated for f32 and bf16) before
//! pushing its address, then picks the instantiation (`_f32` or `_bf16`) from `T`. The same
//! declarations form a table ([`KernelSig`]) that `tests/kernel_signatures.rs` checks against
//! every `extern "C" __global__` signature of `kernels/*.cu`, so an argument-order or type
//! mismatch between Rust and CUDA fails without a GPU.
//!
//! Argument syntax: `name: out E` (written pointer), `name: inp E` (read-only pointer),
//! `name: opt_out E` / `name: opt_inp E` (nullable pointers, `Option<&Tensor>`), `name: val S`
//! (a scalar of type S: i32, i64, u32, u64 or f32). E is `T` (the instantiation's type), `f32`,
//! `bf16` or `i32`.

use super::CudaBackend;
use crate::backend::counters;
use crate::tensor::{CpuStorage, DType, Storage, Tensor};
use anyhow::{anyhow, bail, Result};
use cudarc::driver::{LaunchConfig, PushKernelArg};

/// Element type of a pointer argument. `T` is the type a generic kernel is instantiated for.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    T,
    f32,
    bf16,
    i32,
}

/// One argument of a kernel as declared in Rust.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// A pointer: `write` false means `const E*` in CUDA.
    Ptr {
        elem: Elem,
        write: bool,
        optional: bool,
    },
    i32,
    i64,
    u32,
    u64,
    f32,
}

/// A kernel's declaration: its file, base name (without the `_f32`/`_bf16` suffix when
/// generic) and arguments.
#[derive(Clone, Copy, Debug)]
pub struct KernelSig {
    pub file: &'static str,
    pub name: &'static str,
    pub generic: bool,
    pub args: &'static [(&'static str, ArgKind)],
    /// The instantiated names: (`name_f32`, `name_bf16`) when generic, else (`name`, `name`).
    pub names: (&'static str, &'static str),
}

impl KernelSig {
    /// The instantiated kernel names: `name` alone, or `name_f32` and `name_bf16`.
    pub fn instances(&self) -> Vec<(String, Option<DType>)> {
        if self.generic {
            vec![
                (format!("{}_f32", self.name), Some(DType::F32)),
                (format!("{}_bf16", self.name), Some(DType::BF16)),
            ]
        } else {
            vec![(self.name.to_string(), None)]
        }
    }
}

/// One argument of a planned launch, before it is checked: a tensor (or none, for an
/// optional pointer) or a scalar.
#[derive(Clone, Copy, Debug)]
pub enum ArgVal<'a> {
    Tensor(Option<&'a Tensor>),
    I32(i32),
    I64(i64),
    U32(u32),
    U64(u64),
    F32(f32),
}

/// One launch as a wrapper plans it: the kernel's declaration, the grid and the arguments in
/// the declared order. The CUDA backend launches it ([`Planned::launch`]); the CPU emulation of
/// CUDA replays the same plan over CPU tensors ([`Planned::host_args`], tests/common/emu.rs),
/// so grid, block, shared memory and argument order are the wrapper's own.
#[derive(Clone, Debug)]
pub struct Planned<'a> {
    pub sig: &'static KernelSig,
    pub cfg: LaunchConfig,
    pub args: Vec<ArgVal<'a>>,
}

impl Planned<'_> {
    /// Checks every argument against the declaration (device, dtype, the shared `T`) and
    /// returns the instantiated kernel name with the values to push; `b` None takes CPU
    /// tensors and pushes their host addresses (emulation).
    fn resolve(&self, b: Option<&CudaBackend>) -> Result<(&'static str, Args)> {
        let sig = self.sig;
        if sig.args.len() != self.args.len() {
            bail!(
                "{}: {} arguments planned, {} declared",
                sig.name,
                self.args.len(),
                sig.args.len()
            );
        }
        let mut args = Args::new(sig.name);
        for (&(name, kind), v) in sig.args.iter().zip(&self.args) {
            match (kind, *v) {
                (ArgKind::Ptr { elem, optional, .. }, ArgVal::Tensor(t)) => match t {
                    Some(t) => args.ptr_on(b, name, t, elem)?,
                    None if optional => args.vals.push(KArg::Ptr(0)),
                    None => bail!("{}: argument {name} is required", sig.name),
                },
                (ArgKind::i32, ArgVal::I32(x)) => args.i32(x),
                (ArgKind::i64, ArgVal::I64(x)) => args.i64(x),
                (ArgKind::u32, ArgVal::U32(x)) => args.u32(x),
                (ArgKind::u64, ArgVal::U64(x)) => args.u64(x),
                (ArgKind::f32, ArgVal::F32(x)) => args.f32(x),
                (k, v) => bail!("{}: argument {name} declared {k:?}, given {v:?}", sig.name),
            }
        }
        let name = if !sig.generic {
            sig.name
        } else {
            match args.dtype() {
                Some(DType::F32) => sig.names.0,
                Some(DType::BF16) => sig.names.1,
                other => bail!("{}: no instantiation for {other:?}", sig.name),
            }
        };
        Ok((name, args))
    }

    /// Launches on `b`'s stream.
    pub fn launch(&self, b: &CudaBackend) -> Result<()> {
        let (name, args) = self.resolve(Some(b))?;
        b.launch_args(self.sig.file, name, self.cfg, &args)
    }

    /// The instantiated kernel name and the arguments as 64-bit slots (pointers are the host
    /// addresses of CPU tensors' first elements, scalars their bits), for the CPU emulation.
    /// The tensors must outlive the emulated launch and not be borrowed elsewhere meanwhile.
    pub fn host_args(&self) -> Result<(&'static str, Vec<u64>)> {
        let (name, args) = self.resolve(None)?;
        let slots = args
            .vals
            .iter()
            .map(|a| match *a {
                KArg::Ptr(v) | KArg::U64(v) => v,
                KArg::I64(v) => v as u64,
                KArg::I32(v) => v as u32 as u64,
                KArg::U32(v) => v as u64,
                KArg::F32(v) => v.to_bits() as u64,
            })
            .collect();
        Ok((name, slots))
    }
}

/// One argument value as pushed to the driver.
#[derive(Clone, Copy, Debug)]
pub enum KArg {
    Ptr(u64),
    I64(i64),
    I32(i32),
    U32(u32),
    U64(u64),
    F32(f32),
}

/// The arguments of one launch, checked as they are pushed.
pub struct Args {
    kernel: &'static str,
    dtype: Option<DType>,
    vals: Vec<KArg>,
}

impl Args {
    pub fn new(kernel: &'static str) -> Self {
        Args {
            kernel,
            dtype: None,
            vals: Vec::with_capacity(16),
        }
    }
    /// The type `T` was bound to by the tensors pushed so far.
    pub fn dtype(&self) -> Option<DType> {
        self.dtype
    }
    pub fn values(&self) -> &[KArg] {
        &self.vals
    }

    /// `b` None: the host address of a CPU tensor (the emulation's launches).
    fn address_on(
        &mut self,
        b: Option<&CudaBackend>,
        name: &str,
        t: &Tensor,
        elem: Elem,
    ) -> Result<u64> {
        let k = self.kernel;
        let want = match elem {
            Elem::T => match self.dtype {
                Some(d) => d,
                None => {
                    if !t.dtype.is_float() {
                        bail!("{k}: argument {name} is {}, not f32 or bf16", t.dtype);
                    }
                    self.dtype = Some(t.dtype);
                    t.dtype
                }
            },
            Elem::f32 => DType::F32,
            Elem::bf16 => DType::BF16,
            Elem::i32 => DType::I32,
        };
        if t.dtype != want {
            bail!(
                "{k}: argument {name} must be {want}, found {} (shape {:?})",
                t.dtype,
                t.shape
            );
        }
        let off = (t.offset() * t.dtype.size_bytes()) as u64;
        match (t.storage(), b) {
            (Storage::Cuda(s), Some(b)) if std::ptr::eq(&*s.backend, b) => Ok(s.ptr() + off),
            (Storage::Cuda(s), Some(b)) => bail!(
                "{k}: argument {name} lives on cuda:{}, the launch is on cuda:{}",
                s.backend.ordinal,
                b.ordinal
            ),
            (Storage::Cpu(_), Some(_)) => bail!("{k}: argument {name} is a CPU tensor"),
            (Storage::Cuda(_), None) => {
                bail!("{k}: argument {name} is a CUDA tensor; the emulation takes CPU tensors")
            }
            (Storage::Cpu(c), None) => {
                let mut g = c
                    .try_write()
                    .map_err(|_| anyhow!("{k}: argument {name} is borrowed elsewhere"))?;
                let base = match &mut *g {
                    CpuStorage::F32(v) => v.as_mut_ptr() as u64,
                    CpuStorage::BF16(v) => v.as_mut_ptr() as u64,
                    CpuStorage::I32(v) => v.as_mut_ptr() as u64,
                };
                Ok(base + off)
            }
        }
    }

    fn ptr_on(
        &mut self,
        b: Option<&CudaBackend>,
        name: &str,
        t: &Tensor,
        elem: Elem,
    ) -> Result<()> {
        let p = self.address_on(b, name, t, elem)?;
        self.vals.push(KArg::Ptr(p));
        Ok(())
    }

    pub fn i32(&mut self, v: i32) {
        self.vals.push(KArg::I32(v));
    }
    pub fn i64(&mut self, v: i64) {
        self.vals.push(KArg::I64(v));
    }
    pub fn u32(&mut self, v: u32) {
        self.vals.push(KArg::U32(v));
    }
    pub fn u64(&mut self, v: u64) {
        self.vals.push(KArg::U64(v));
    }
    pub fn f32(&mut self, v: f32) {
        self.vals.push(KArg::F32(v));
    }
}

/// Declares the kernels of one `kernels/*.cu` file; see the module documentation.
macro_rules! kernels {
    (file $file:literal; $(
        $(#[$meta:meta])*
        $S:ident = $k:ident $(<$g:ident>)? ( $( $f:ident : $role:ident $e:ident ),* $(,)? );
    )*) => {
        $(
            $(#[$meta])*
            #[derive(Clone, Copy)]
            pub struct $S<'a> {
                $( pub $f: $crate::backend::cuda::launch::kernels!(@ty $role $e), )*
            }
            impl<'a> $S<'a> {
                pub const SIG: $crate::backend::cuda::launch::KernelSig =
                    $crate::backend::cuda::launch::KernelSig {
                        file: $file,
                        name: stringify!($k),
                        generic: $crate::backend::cuda::launch::kernels!(@generic $($g)?),
                        args: &[$( (stringify!($f),
                            $crate::backend::cuda::launch::kernels!(@kind $role $e)) ),*],
                        names: $crate::backend::cuda::launch::kernels!(@names $k $(, $g)?),
                    };
                /// The launch as planned, for [`Planned::launch`] or the emulation.
                ///
                /// [`Planned::launch`]: $crate::backend::cuda::launch::Planned::launch
                pub fn planned(
                    &self,
                    cfg: cudarc::driver::LaunchConfig,
                ) -> $crate::backend::cuda::launch::Planned<'a> {
                    $crate::backend::cuda::launch::Planned {
                        sig: &Self::SIG,
                        cfg,
                        args: vec![$( $crate::backend::cuda::launch::kernels!(@val self.$f, $role $e) ),*],
                    }
                }
                /// Checks the arguments and launches on `b`'s stream.
                pub fn launch(
                    &self,
                    b: &$crate::backend::cuda::CudaBackend,
                    cfg: cudarc::driver::LaunchConfig,
                ) -> anyhow::Result<()> {
                    self.planned(cfg).launch(b)
                }
            }
        )*
        /// Every kernel of this file as declared here (checked against the .cu file by
        /// tests/kernel_signatures.rs).
        pub const SIGNATURES: &[$crate::backend::cuda::launch::KernelSig] = &[$( $S::SIG ),*];
    };
    (@ty out $e:ident) => { &'a $crate::tensor::Tensor };
    (@ty inp $e:ident) => { &'a $crate::tensor::Tensor };
    (@ty opt_out $e:ident) => { Option<&'a $crate::tensor::Tensor> };
    (@ty opt_inp $e:ident) => { Option<&'a $crate::tensor::Tensor> };
    (@ty val $t:ident) => { $t };
    (@kind out $e:ident) => { $crate::backend::cuda::launch::ArgKind::Ptr {
        elem: $crate::backend::cuda::launch::Elem::$e, write: true, optional: false } };
    (@kind inp $e:ident) => { $crate::backend::cuda::launch::ArgKind::Ptr {
        elem: $crate::backend::cuda::launch::Elem::$e, write: false, optional: false } };
    (@kind opt_out $e:ident) => { $crate::backend::cuda::launch::ArgKind::Ptr {
        elem: $crate::backend::cuda::launch::Elem::$e, write: true, optional: true } };
    (@kind opt_inp $e:ident) => { $crate::backend::cuda::launch::ArgKind::Ptr {
        elem: $crate::backend::cuda::launch::Elem::$e, write: false, optional: true } };
    (@kind val $t:ident) => { $crate::backend::cuda::launch::ArgKind::$t };
    (@val $v:expr, out $e:ident) => { $crate::backend::cuda::launch::ArgVal::Tensor(Some($v)) };
    (@val $v:expr, inp $e:ident) => { $crate::backend::cuda::launch::ArgVal::Tensor(Some($v)) };
    (@val $v:expr, opt_out $e:ident) => { $crate::backend::cuda::launch::ArgVal::Tensor($v) };
    (@val $v:expr, opt_inp $e:ident) => { $crate::backend::cuda::launch::ArgVal::Tensor($v) };
    (@val $v:expr, val i32) => { $crate::backend::cuda::launch::ArgVal::I32($v) };
    (@val $v:expr, val i64) => { $crate::backend::cuda::launch::ArgVal::I64($v) };
    (@val $v:expr, val u32) => { $crate::backend::cuda::launch::ArgVal::U32($v) };
    (@val $v:expr, val u64) => { $crate::backend::cuda::launch::ArgVal::U64($v) };
    (@val $v:expr, val f32) => { $crate::backend::cuda::launch::ArgVal::F32($v) };
    (@names $k:ident) => { (stringify!($k), stringify!($k)) };
    (@names $k:ident, $g:ident) => {
        (concat!(stringify!($k), "_f32"), concat!(stringify!($k), "_bf16"))
    };
    (@generic) => { false };
    (@generic $g:ident) => { true };
}
pub(crate) use kernels;

/// Launches the kernel struct `$K` over `n` elements: the listed fields plus `n: n as i64`,
/// on the grid `$cfg(n)` (normally [`grid_stride`](super::grid_stride)).
macro_rules! launch_n {
    ($b:expr, $cfg:expr, $n:expr, $K:ident { $($f:ident $(: $v:expr)?),* $(,)? }) => {{
        let n: usize = $n;
        $K { $($f $(: $v)?,)* n: n as i64 }.launch($b, ($cfg)(n))
    }};
}
pub(crate) use launch_n;

/// Launches the kernel struct `$K` with one block per row of `cols` elements, given
/// `(rows, cols)`: the listed fields plus `$cols_field: cols as i32`, on the grid
/// `$cfg(rows, cols)`.
macro_rules! launch_rows {
    ($b:expr, $cfg:expr, $rows_cols:expr, $cols_field:ident,
     $K:ident { $($f:ident $(: $v:expr)?),* $(,)? }) => {{
        let (rows, cols): (usize, usize) = $rows_cols;
        $K { $($f $(: $v)?,)* $cols_field: cols as i32 }.launch($b, ($cfg)(rows, cols))
    }};
}
pub(crate) use launch_rows;

/// Declares `$E`, an enum of one file's typed kernel launches (a variant per kernel struct),
/// and `$L`, one planned launch of it (`kernel` and `cfg`) with its kernel's `name` and
/// `launch`.
macro_rules! launch_enum {
    ($(#[$em:meta])* enum $E:ident; $(#[$lm:meta])* struct $L:ident;
     $($V:ident($K:ident)),* $(,)?) => {
        $(#[$em])*
        #[derive(Clone, Copy)]
        pub enum $E<'a> {
            $($V($K<'a>),)*
        }

        $(#[$lm])*
        #[derive(Clone, Copy)]
        pub struct $L<'a> {
            pub kernel: $E<'a>,
            pub cfg: cudarc::driver::LaunchConfig,
        }

        impl $L<'_> {
            /// The kernel's base name in its `kernels/*.cu` file (without `_f32`/`_bf16`).
            pub fn name(&self) -> &'static str {
                match self.kernel {
                    $($E::$V(_) => $K::SIG.name,)*
                }
            }

            /// Runs the launch on `b`'s stream.
            pub fn launch(&self, b: &$crate::backend::cuda::CudaBackend) -> anyhow::Result<()> {
                match &self.kernel {
                    $($E::$V(k) => k.launch(b, self.cfg),)*
                }
            }
        }

        impl<'a> $L<'a> {
            /// The launch as a declaration-checked plan (what the CPU emulation replays).
            pub fn planned(&self) -> $crate::backend::cuda::launch::Planned<'a> {
                match self.kernel {
                    $($E::$V(k) => k.planned(self.cfg),)*
                }
            }
        }
    };
}
pub(crate) use launch_enum;

impl CudaBackend {
    /// Launches `kernel` of `kernels/{file}.cu` on this backend's stream with checked
    /// arguments (see [`kernels!`]).
    pub fn launch_args(
        &self,
        file: &'static str,
        kernel: &'static str,
        cfg: LaunchConfig,
        args: &Args,
    ) -> Result<()> {
        self.launch(file, kernel, cfg, args.values())
    }

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
        counters::count_launch();
        self.profiler
            .run(&self.stream, kernel, || {
                unsafe { lb.launch(cfg) }.map(|_| ())
            })
            .map_err(|e| anyhow!("{e:#} (kernels/{file}.cu)"))
    }
}
