//! A recorder of op calls: while [`record`] runs a closure on this thread, every op that enters
//! the CPU backend through `Device::run` is logged with its tensors' shapes, dtypes and
//! offsets and its shape descriptor (`MatmulShape`, `AttnShape`, …), then computed by the CPU
//! backend as usual. `seisfuse profile` without a GPU runs a training step this way and maps
//! each call to the CUDA kernels the CUDA backend would launch for it (`cuda::predict`).
//!
//! Only the outermost call is logged: an op the CPU backend calls from inside another op is
//! part of that op. A *dry* recording ([`record_dry`]) logs the calls without computing them:
//! outputs keep the zeros they were allocated with, which is enough where no host decision
//! depends on computed values (a training step of the benchmarks' models: tests/profile.rs
//! checks that a dry and a computing step log the same calls), and it makes recording a
//! batch-64 step of sfm-base take seconds instead of minutes, with untouched output pages.

// The argument types of every op (the generated methods below name them all).
use super::api::layer_norm::{LayerNormOut, Residual};
use super::api::{self, *};
use super::api::{attention::AttnShape, conv1d::Conv1dShape, matmul::MatmulShape};
use super::api::{conv2d::Conv2dShape, optim::AdamWStep};
use super::cpu::CPU;
use crate::dsp::images::MelImagePlan;
use crate::dsp::mel::LogMel;
use crate::ops::ChunkTable;
use crate::tensor::{DType, Tensor};
use anyhow::Result;
use std::cell::{Cell, RefCell};

/// One tensor argument of a call.
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub dtype: DType,
    /// Elements from the start of its buffer (the CUDA wrappers check alignment with it).
    pub offset: usize,
}

impl Arg {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn bytes(&self) -> f64 {
        self.numel() as f64 * self.dtype.size_bytes() as f64
    }
}

/// The shape descriptor of a call, where the op takes one.
#[derive(Clone, Debug, PartialEq)]
pub enum Detail {
    Matmul(MatmulShape),
    Attn(AttnShape),
    Conv1d(Conv1dShape),
    Conv2d(Conv2dShape),
    Strided(StridedCopy),
    Slice(SliceDims),
    /// A parameter store's chunk table: its chunk count.
    Chunks(usize),
}

/// One op call as the backend received it.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub op: &'static str,
    pub args: Vec<Arg>,
    pub details: Vec<Detail>,
    /// usize scalars (`rows`, `cols`, `k`, …) and flags, by name.
    pub nums: Vec<(&'static str, usize)>,
}

impl Call {
    /// The tensor argument called `name`.
    pub fn arg(&self, name: &str) -> Option<&Arg> {
        self.args.iter().find(|a| a.name == name)
    }
    pub fn num(&self, name: &str) -> Option<usize> {
        self.nums.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
    }
}

thread_local! {
    static LOG: RefCell<Option<Vec<Call>>> = const { RefCell::new(None) };
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    static DRY: Cell<bool> = const { Cell::new(false) };
}

fn dry() -> bool {
    DRY.with(Cell::get)
}

/// Whether this thread is recording (`Device::run` then hands out [`RECORDER`]).
pub fn active() -> bool {
    LOG.with(|l| l.borrow().is_some())
}

/// Runs `f` with recording on and returns its result and the calls it made on this thread.
/// Recording is switched off again even when `f` fails.
pub fn record<T>(f: impl FnOnce() -> Result<T>) -> (Result<T>, Vec<Call>) {
    record_with(false, f)
}

/// Like [`record`], but the ops are not computed (see the module documentation).
pub fn record_dry<T>(f: impl FnOnce() -> Result<T>) -> (Result<T>, Vec<Call>) {
    record_with(true, f)
}

fn record_with<T>(dry: bool, f: impl FnOnce() -> Result<T>) -> (Result<T>, Vec<Call>) {
    LOG.with(|l| *l.borrow_mut() = Some(Vec::new()));
    DRY.with(|d| d.set(dry));
    let r = f();
    DRY.with(|d| d.set(false));
    let calls = LOG.with(|l| l.borrow_mut().take()).unwrap_or_default();
    (r, calls)
}

/// The CPU backend, logging each call.
pub struct Recorder;
pub static RECORDER: Recorder = Recorder;

struct Rec(Call);

/// Ends a logged call: nested calls inside it are not logged.
struct Guard;
impl Drop for Guard {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

impl Rec {
    fn new(op: &'static str) -> Self {
        Rec(Call {
            op,
            args: Vec::new(),
            details: Vec::new(),
            nums: Vec::new(),
        })
    }
    fn t(&mut self, name: &'static str, t: &Tensor) {
        self.0.args.push(Arg {
            name,
            shape: t.shape.clone(),
            dtype: t.dtype,
            offset: t.offset(),
        });
    }
    fn opt(&mut self, name: &'static str, t: Option<&Tensor>) {
        if let Some(t) = t {
            self.t(name, t);
        }
    }
    fn num(&mut self, name: &'static str, v: usize) {
        self.0.nums.push((name, v));
    }
    fn attn_grads(&mut self, g: &AttnGrads) {
        match g {
            AttnGrads::Fused(t) => self.t("dqkv", t),
            AttnGrads::Separate { dq, dk, dv } => {
                self.t("dq", dq);
                self.t("dk", dk);
                self.t("dv", dv);
            }
        }
    }
    fn detail(&mut self, d: impl IntoDetail) {
        self.0.details.push(d.into_detail());
    }
    fn push(self) -> Guard {
        let depth = DEPTH.with(|d| {
            let v = d.get();
            d.set(v + 1);
            v
        });
        if depth == 0 {
            LOG.with(|l| {
                if let Some(v) = l.borrow_mut().as_mut() {
                    v.push(self.0);
                }
            });
        }
        Guard
    }
}

trait IntoDetail {
    fn into_detail(self) -> Detail;
}

/// `IntoDetail` for the shape descriptors a `Detail` holds as they are.
macro_rules! into_detail {
    ($($ty:ty => $variant:ident),+ $(,)?) => {
        $(impl IntoDetail for &$ty {
            fn into_detail(self) -> Detail {
                Detail::$variant(*self)
            }
        })+
    };
}
into_detail!(
    MatmulShape => Matmul,
    AttnShape => Attn,
    Conv1dShape => Conv1d,
    Conv2dShape => Conv2d,
    StridedCopy => Strided,
    SliceDims => Slice,
);
impl IntoDetail for &ChunkTable {
    fn into_detail(self) -> Detail {
        Detail::Chunks(self.count)
    }
}

/// One op of the recorder: `$log` records the call's arguments into `$r`; the call is then
/// logged (unless it is nested in another) and computed by the CPU backend, or, in a dry
/// recording, answered with the result's default (`()`, 0.0) without computing.
macro_rules! logged {
    ($op:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty, |$r:ident| $log:block) => {
        fn $op(&self $(, $arg: $ty)*) -> $ret {
            let mut $r = Rec::new(stringify!($op));
            $log
            let _g = $r.push();
            if dry() {
                return Ok(Default::default());
            }
            CPU.$op($($arg),*)
        }
    };
}

impl api::Backend for Recorder {
    fn name(&self) -> String {
        "cpu".into()
    }
    fn alloc(&self, shape: &[usize], dtype: DType) -> Result<Tensor> {
        CPU.alloc(shape, dtype)
    }
    fn zeros(&self, shape: &[usize], dtype: DType) -> Result<Tensor> {
        CPU.zeros(shape, dtype)
    }
    logged!(fill_zero(&self, t: &mut Tensor) -> Result<()>, |r| {
        r.t("t", t);
    });
    logged!(copy(&self, dst: &mut Tensor, src: &Tensor) -> Result<()>, |r| {
        r.t("dst", dst);
        r.t("src", src);
    });
    fn synchronize(&self) -> Result<()> {
        CPU.synchronize()
    }
}

// Generated from src/backend/api/*.rs by tools/gen_record.py (one `logged!` method per op: each
// tensor argument logged under its parameter or field name, shape descriptors as details, integer
// and flag arguments as numbers); the compiler checks that every op of `Backend` is here.

impl api::AttentionOps for Recorder {
    logged!(attention(&self, o: AttentionOut, x: Qkv, s: &AttnShape) -> Result<()>, |r| {
        r.t("out", &*o.out);
        r.t("lse", &*o.lse);
        r.t("q", x.q);
        r.t("k", x.k);
        r.t("v", x.v);
        r.detail(s);
    });
    logged!(attention_backward(&self, a: AttentionBackward, s: &AttnShape) -> Result<()>, |r| {
        r.attn_grads(&a.grads);
        r.t("q", a.qkv.q);
        r.t("k", a.qkv.k);
        r.t("v", a.qkv.v);
        r.t("out", a.out);
        r.t("lse", a.lse);
        r.t("dout", a.dout);
        r.detail(s);
    });
}

impl api::BatchNormOps for Recorder {
    logged!(batch_norm_train(
        &self, out: BatchNormTrainOut, a: NormInput, momentum: f32
    ) -> Result<()>, |r| {
        r.t("y", &*out.y);
        r.t("mean", &*out.mean);
        r.t("rstd", &*out.rstd);
        r.t("running_mean", &*out.running_mean);
        r.t("running_var", &*out.running_var);
        r.t("x", a.x);
        r.t("w", a.w);
        r.t("b", a.b);
    });
    logged!(batch_norm_eval(
        &self, y: &mut Tensor, a: NormInput, running: BatchNormRunning
    ) -> Result<()>, |r| {
        r.t("y", &*y);
        r.t("x", a.x);
        r.t("w", a.w);
        r.t("b", a.b);
        r.t("mean", running.mean);
        r.t("var", running.var);
    });
    logged!(batch_norm_backward(&self, a: NormBackward) -> Result<()>, |r| {
        r.t("dx", &*a.dx);
        r.t("dw", &*a.dw);
        r.t("db", &*a.db);
        r.t("dy", a.dy);
        r.t("x", a.x);
        r.t("w", a.w);
        r.t("mean", a.mean);
        r.t("rstd", a.rstd);
        r.opt("dres", a.dres);
    });
}

impl api::ChannelsOps for Recorder {
    logged!(copy_strided(
        &self, dst: &mut Tensor, src: &Tensor, c: &StridedCopy
    ) -> Result<()>, |r| {
        r.t("dst", &*dst);
        r.t("src", src);
        r.detail(c);
    });
    logged!(permute_last2(
        &self, out: &mut Tensor, x: &Tensor, rows: usize, cols: usize
    ) -> Result<()>, |r| {
        r.t("out", &*out);
        r.t("x", x);
        r.num("rows", rows);
        r.num("cols", cols);
    });
}

impl api::Conv1dOps for Recorder {
    logged!(conv1d(&self, y: &mut Tensor, a: ConvInput, s: &Conv1dShape) -> Result<()>, |r| {
        r.t("y", &*y);
        r.t("x", a.x);
        r.t("w", a.w);
        r.opt("bias", a.bias);
        r.detail(s);
    });
    logged!(conv1d_backward(&self, a: ConvBackward, s: &Conv1dShape) -> Result<()>, |r| {
        r.opt("dx", a.dx.as_deref());
        r.t("dw", &*a.dw);
        r.opt("db", a.db.as_deref());
        r.t("dy", a.dy);
        r.t("x", a.x);
        r.t("w", a.w);
        r.detail(s);
    });
    logged!(weight_norm(
        &self, w: &mut Tensor, norm: &mut Tensor, a: WeightNormInput
    ) -> Result<()>, |r| {
        r.t("w", &*w);
        r.t("norm", &*norm);
        r.t("g", a.g);
        r.t("v", a.v);
        r.num("outer", a.outer);
        r.num("inner", a.inner);
    });
    logged!(weight_norm_backward(&self, a: WeightNormBackward) -> Result<()>, |r| {
        r.t("dg", &*a.dg);
        r.t("dv", &*a.dv);
        r.t("dw", a.dw);
        r.t("g", a.input.g);
        r.t("v", a.input.v);
        r.num("outer", a.input.outer);
        r.num("inner", a.input.inner);
        r.t("norm", a.norm);
    });
    logged!(transpose_last2(
        &self, out: &mut Tensor, x: &Tensor, m: usize, n: usize
    ) -> Result<()>, |r| {
        r.t("out", &*out);
        r.t("x", x);
        r.num("m", m);
        r.num("n", n);
    });
    logged!(slice_axis(&self, out: &mut Tensor, x: &Tensor, d: &SliceDims) -> Result<()>, |r| {
        r.t("out", &*out);
        r.t("x", x);
        r.detail(d);
    });
    logged!(slice_axis_backward(
        &self, dx: &mut Tensor, dy: &Tensor, d: &SliceDims
    ) -> Result<()>, |r| {
        r.t("dx", &*dx);
        r.t("dy", dy);
        r.detail(d);
    });
}

impl api::Conv2dOps for Recorder {
    logged!(conv2d(&self, y: &mut Tensor, a: ConvInput, s: &Conv2dShape) -> Result<()>, |r| {
        r.t("y", &*y);
        r.t("x", a.x);
        r.t("w", a.w);
        r.opt("bias", a.bias);
        r.detail(s);
    });
    logged!(conv2d_backward(&self, a: ConvBackward, s: &Conv2dShape) -> Result<()>, |r| {
        r.opt("dx", a.dx.as_deref());
        r.t("dw", &*a.dw);
        r.opt("db", a.db.as_deref());
        r.t("dy", a.dy);
        r.t("x", a.x);
        r.t("w", a.w);
        r.detail(s);
    });
}

impl api::DropoutOps for Recorder {
    logged!(dropout(
        &self, out: &mut Tensor, x: &Tensor, p: f32, key: DropoutKey
    ) -> Result<()>, |r| {
        r.t("out", &*out);
        r.t("x", x);
        r.num("seed", key.seed as usize);
        r.num("step", key.step as usize);
        r.num("stream_id", key.stream_id as usize);
    });
}

impl api::ElementwiseOps for Recorder {
    logged!(add(&self, out: &mut Tensor, a: &Tensor, b: &Tensor) -> Result<()>, |r| {
        r.t("out", &*out);
        r.t("a", a);
        r.t("b", b);
    });
    logged!(bias_add(&self, out: &mut Tensor, x: &Tensor, bias: &Tensor) -> Result<()>, |r| {
        r.t("out", &*out);
        r.t("x", x);
        r.t("bias", bias);
    });
    logged!(gelu(&self, out: &mut Tensor, x: &Tensor) -> Result<()>, |r| {
        r.t("out", &*out);
        r.t("x", x);
    });
    logged!(gelu_backward(&self, dx: &mut Tensor, x: &Tensor, dy: &Tensor) -> Result<()>, |r| {
        r.t("dx", &*dx);
        r.t("x", x);
        r.t("dy", dy);
    });
    logged!(scale(&self, x: &mut Tensor, s: f32) -> Result<()>, |r| {
        r.t("x", &*x);
    });
    logged!(cast(&self, out: &mut Tensor, x: &Tensor) -> Result<()>, |r| {
        r.t("out", &*out);
        r.t("x", x);
    });
    logged!(drain_add(&self, acc: &mut Tensor, x: &mut Tensor) -> Result<()>, |r| {
        r.t("acc", &*acc);
        r.t("x", &*x);
    });
}

impl api::FusionOps for Recorder {
    logged!(project_l2norm(
        &self, out: ProjectOut, x: &Tensor, w: &Tensor, eps: f32
    ) -> Result<()>, |r| {
        r.t("e", &*out.e);
        r.t("norm", &*out.norm);
        r.t("x", x);
        r.t("w", w);
    });
    logged!(project_l2norm_backward(&self, a: ProjectBackward) -> Result<()>, |r| {
        r.t("dx", &*a.dx);
        r.t("dw", &*a.dw);
        r.t("dz", &*a.dz);
        r.t("x", a.x);
        r.t("w", a.w);
        r.t("e", a.e);
        r.t("norm", a.norm);
        r.t("de", a.de);
    });
    logged!(similarity(&self, logits: &mut Tensor, a: SimilarityInput) -> Result<()>, |r| {
        r.t("logits", &*logits);
        r.t("ei", a.ei);
        r.t("ew", a.ew);
        r.t("log_scale", a.log_scale);
    });
    logged!(infonce(
        &self, lse: &mut Tensor, losses: &mut Tensor, logits: &Tensor
    ) -> Result<()>, |r| {
        r.t("lse", &*lse);
        r.t("losses", &*losses);
        r.t("logits", logits);
    });
    logged!(infonce_backward(&self, a: InfonceBackward) -> Result<()>, |r| {
        r.t("dlogits", &*a.dlogits);
        r.t("logits", a.logits);
        r.t("lse", a.lse);
    });
    logged!(similarity_backward(&self, a: SimilarityBackward) -> Result<()>, |r| {
        r.t("dei", &*a.dei);
        r.t("dew", &*a.dew);
        r.t("dlog_scale", &*a.dlog_scale);
        r.t("ei", a.input.ei);
        r.t("ew", a.input.ew);
        r.t("log_scale", a.input.log_scale);
        r.t("logits", a.logits);
        r.t("dlogits", a.dlogits);
    });
}

impl api::LayerNormOps for Recorder {
    logged!(layer_norm(&self, out: LayerNormOut, a: NormInput) -> Result<()>, |r| {
        r.t("y", &*out.y);
        r.t("mean", &*out.mean);
        r.t("rstd", &*out.rstd);
        r.t("x", a.x);
        r.t("w", a.w);
        r.t("b", a.b);
    });
    logged!(add_layer_norm(
        &self, out: LayerNormOut, a: NormInput, res: Residual
    ) -> Result<()>, |r| {
        r.t("y", &*out.y);
        r.t("mean", &*out.mean);
        r.t("rstd", &*out.rstd);
        r.t("x", a.x);
        r.t("w", a.w);
        r.t("b", a.b);
        r.t("r", res.r);
        r.t("sum", &*res.sum);
    });
    logged!(layer_norm_backward(&self, a: NormBackward) -> Result<()>, |r| {
        r.t("dx", &*a.dx);
        r.t("dw", &*a.dw);
        r.t("db", &*a.db);
        r.t("dy", a.dy);
        r.t("x", a.x);
        r.t("w", a.w);
        r.t("mean", a.mean);
        r.t("rstd", a.rstd);
        r.opt("dres", a.dres);
    });
}

impl api::LossOps for Recorder {
    logged!(nll(&self, out: NllOut, logits: &Tensor, targets: &Tensor) -> Result<()>, |r| {
        r.t("losses", &*out.losses);
        r.t("valid", &*out.valid);
        r.t("logits", logits);
        r.t("targets", targets);
    });
    logged!(nll_backward(&self, a: CrossEntropyBackward) -> Result<()>, |r| {
        r.t("dlogits", &*a.dlogits);
        r.t("logits", a.logits);
        r.t("targets", a.targets);
    });
    logged!(soft_ce(
        &self, losses: &mut Tensor, logits: &Tensor, targets: &Tensor
    ) -> Result<()>, |r| {
        r.t("losses", &*losses);
        r.t("logits", logits);
        r.t("targets", targets);
    });
    logged!(soft_ce_backward(&self, a: CrossEntropyBackward) -> Result<()>, |r| {
        r.t("dlogits", &*a.dlogits);
        r.t("logits", a.logits);
        r.t("targets", a.targets);
    });
    logged!(mse(&self, sq: &mut Tensor, x: &Tensor, y: &Tensor) -> Result<()>, |r| {
        r.t("sq", &*sq);
        r.t("x", x);
        r.t("y", y);
    });
    logged!(mse_backward(
        &self, dx: &mut Tensor, x: &Tensor, y: &Tensor, scale: f32
    ) -> Result<()>, |r| {
        r.t("dx", &*dx);
        r.t("x", x);
        r.t("y", y);
    });
    logged!(masked_row_mse(&self, row_loss: &mut Tensor, a: MaskedRows) -> Result<()>, |r| {
        r.t("row_loss", &*row_loss);
        r.t("x", a.x);
        r.t("y", a.y);
        r.t("mask", a.mask);
    });
    logged!(masked_row_mse_backward(
        &self, dx: &mut Tensor, a: MaskedRows, scale: f32
    ) -> Result<()>, |r| {
        r.t("dx", &*dx);
        r.t("x", a.x);
        r.t("y", a.y);
        r.t("mask", a.mask);
    });
}

impl api::MatmulOps for Recorder {
    logged!(matmul(&self, c: &mut Tensor, x: MatmulInput, s: &MatmulShape) -> Result<()>, |r| {
        r.t("c", &*c);
        r.t("a", x.a);
        r.t("b", x.b);
        r.opt("bias", x.bias);
        r.num("accumulate", x.accumulate as usize);
        r.detail(s);
    });
    logged!(matmul_gelu(
        &self, h: &mut Tensor, act: &mut Tensor, x: MatmulInput, s: &MatmulShape
    ) -> Result<()>, |r| {
        r.t("h", &*h);
        r.t("act", &*act);
        r.t("a", x.a);
        r.t("b", x.b);
        r.opt("bias", x.bias);
        r.num("accumulate", x.accumulate as usize);
        r.detail(s);
    });
    logged!(matmul_dgelu(
        &self, dh: &mut Tensor, x: MatmulInput, s: &MatmulShape, h: &Tensor
    ) -> Result<()>, |r| {
        r.t("dh", &*dh);
        r.t("a", x.a);
        r.t("b", x.b);
        r.opt("bias", x.bias);
        r.num("accumulate", x.accumulate as usize);
        r.detail(s);
        r.t("h", h);
    });
    logged!(sum_rows(&self, out: &mut Tensor, x: &Tensor, accumulate: bool) -> Result<()>, |r| {
        r.t("out", &*out);
        r.t("x", x);
        r.num("accumulate", accumulate as usize);
    });
}

impl api::OptimOps for Recorder {
    logged!(grad_norm_sq(
        &self, norm_sq: &mut Tensor, grads: &Tensor, chunks: &ChunkTable
    ) -> Result<()>, |r| {
        r.t("norm_sq", &*norm_sq);
        r.t("grads", grads);
        r.detail(chunks);
    });
    logged!(adamw(&self, a: AdamWStep) -> Result<()>, |r| {
        r.t("values", &*a.values);
        r.t("m", &*a.m);
        r.t("v", &*a.v);
        r.opt("compute", a.compute.as_deref());
        r.t("grads", a.grads);
        r.detail(a.chunks);
        r.t("norm_sq", a.norm_sq);
        r.num("t", a.t as usize);
    });
}

impl api::ReduceOps for Recorder {
    logged!(sum(&self, out: &mut Tensor, x: &Tensor, square: bool, scale: f32) -> Result<()>, |r| {
        r.t("out", &*out);
        r.t("x", x);
        r.num("square", square as usize);
    });
}

impl api::ReluOps for Recorder {
    logged!(relu(&self, y: &mut Tensor, x: &Tensor) -> Result<()>, |r| {
        r.t("y", &*y);
        r.t("x", x);
    });
    logged!(relu_backward(&self, dx: &mut Tensor, y: &Tensor, dy: &Tensor) -> Result<()>, |r| {
        r.t("dx", &*dx);
        r.t("y", y);
        r.t("dy", dy);
    });
}

impl api::SoftmaxOps for Recorder {
    logged!(softmax(&self, y: &mut Tensor, x: &Tensor) -> Result<()>, |r| {
        r.t("y", &*y);
        r.t("x", x);
    });
    logged!(softmax_backward(&self, dx: &mut Tensor, y: &Tensor, dy: &Tensor) -> Result<()>, |r| {
        r.t("dx", &*dx);
        r.t("y", y);
        r.t("dy", dy);
    });
}

impl api::SsimOps for Recorder {
    logged!(ssim(&self, p: ImagePair) -> Result<f32>, |r| {
        r.t("x", p.x);
        r.t("y", p.y);
    });
    logged!(ms_ssim(&self, p: ImagePair, grad: Option<(&mut Tensor, f32)>) -> Result<f32>, |r| {
        r.t("x", p.x);
        r.t("y", p.y);
        if let Some((t, _)) = &grad {
            r.t("grad", t);
        }
    });
}

impl api::StftMelOps for Recorder {
    logged!(log_mel(&self, out: &mut Tensor, x: &Tensor, lm: &LogMel<f32>) -> Result<()>, |r| {
        r.t("out", &*out);
        r.t("x", x);
    });
    logged!(log_mel_backward(&self, a: LogMelBackward, lm: &LogMel<f32>) -> Result<()>, |r| {
        r.t("dx", &*a.dx);
        r.t("x", a.x);
        r.t("dy", a.dy);
    });
    logged!(mel_image_finish(
        &self, images: &mut Tensor, logmel: &Tensor, plan: &MelImagePlan
    ) -> Result<()>, |r| {
        r.t("images", &*images);
        r.t("logmel", logmel);
    });
    logged!(mean_over_channels(&self, out: &mut Tensor, x: &Tensor) -> Result<()>, |r| {
        r.t("out", &*out);
        r.t("x", x);
    });
}

impl api::TokenOps for Recorder {
    logged!(patchify(&self, patches: &mut Tensor, img: &Tensor, p: usize) -> Result<()>, |r| {
        r.t("patches", &*patches);
        r.t("img", img);
        r.num("p", p);
    });
    logged!(unpatchify(&self, img: &mut Tensor, patches: &Tensor, p: usize) -> Result<()>, |r| {
        r.t("img", &*img);
        r.t("patches", patches);
        r.num("p", p);
    });
    logged!(gather_rows(&self, out: &mut Tensor, a: GatherInput) -> Result<()>, |r| {
        r.t("out", &*out);
        r.t("src", a.src);
        r.t("idx", a.idx);
        r.opt("fill", a.fill);
    });
    logged!(gather_rows_backward(
        &self, g: GatherGrads, dout: &Tensor, idx: &Tensor
    ) -> Result<()>, |r| {
        r.t("dsrc", &*g.dsrc);
        r.opt("dfill", g.dfill.as_deref());
        r.t("dout", dout);
        r.t("idx", idx);
    });
}

impl api::UpsampleOps for Recorder {
    logged!(upsample_nearest(&self, out: &mut Tensor, x: &Tensor, k: usize) -> Result<()>, |r| {
        r.t("out", &*out);
        r.t("x", x);
        r.num("k", k);
    });
    logged!(upsample_nearest_backward(
        &self, dx: &mut Tensor, dy: &Tensor, k: usize
    ) -> Result<()>, |r| {
        r.t("dx", &*dx);
        r.t("dy", dy);
        r.num("k", k);
    });
    logged!(upsample_bilinear(
        &self, out: &mut Tensor, x: &Tensor, align_corners: bool
    ) -> Result<()>, |r| {
        r.t("out", &*out);
        r.t("x", x);
        r.num("align_corners", align_corners as usize);
    });
    logged!(upsample_bilinear_backward(
        &self, dx: &mut Tensor, dy: &Tensor, align_corners: bool
    ) -> Result<()>, |r| {
        r.t("dx", &*dx);
        r.t("dy", dy);
        r.num("align_corners", align_corners as usize);
    });
}

impl api::Wav2vec2Ops for Recorder {
    logged!(gumbel_forward(&self, a: GumbelArgs) -> Result<()>, |r| {
        r.t("hard", &*a.hard);
        r.t("soft", &*a.soft);
        r.t("logits", a.logits);
        r.num("seed", a.seed as usize);
        r.num("step", a.step as usize);
    });
    logged!(codevector_gather(&self, q: &mut Tensor, book: Codebook) -> Result<()>, |r| {
        r.t("q", &*q);
        r.t("code", book.code);
        r.t("hard", book.hard);
        r.num("groups", book.groups);
    });
    logged!(codevector_backward(&self, a: CodevectorBackward) -> Result<()>, |r| {
        r.t("dlogits", &*a.dlogits);
        r.t("dcode", &*a.dcode);
        r.t("soft", a.soft);
        r.t("code", a.book.code);
        r.t("hard", a.book.hard);
        r.num("groups", a.book.groups);
        r.t("dq", a.dq);
    });
    logged!(codebook_perplexity(&self, a: PerplexityArgs) -> Result<()>, |r| {
        r.t("ppl", &*a.ppl);
        r.t("dlogits", &*a.dlogits);
        r.t("logits", a.logits);
        r.t("weight", a.weight);
        r.num("groups", a.groups);
    });
    logged!(contrastive(&self, out: ContrastiveOut, a: ContrastiveArgs) -> Result<()>, |r| {
        r.t("loss", &*out.loss);
        r.t("dc", &*out.dc);
        r.t("dq", &*out.dq);
        r.t("c", a.c);
        r.t("q", a.q);
        r.t("cand", a.idx.cand);
        r.t("offsets", a.idx.offsets);
        r.t("entries", a.idx.entries);
    });
}
