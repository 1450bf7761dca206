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
use super::api::{self, *};
use super::api::{attention::AttnShape, conv1d::Conv1dShape, matmul::MatmulShape};
use super::api::{conv2d::Conv2dShape, layer_norm::LayerNormOut, optim::AdamWStep};
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
impl IntoDetail for &MatmulShape {
    fn into_detail(self) -> Detail {
        Detail::Matmul(*self)
    }
}
impl IntoDetail for &AttnShape {
    fn into_detail(self) -> Detail {
        Detail::Attn(*self)
    }
}
impl IntoDetail for &Conv1dShape {
    fn into_detail(self) -> Detail {
        Detail::Conv1d(*self)
    }
}
impl IntoDetail for &Conv2dShape {
    fn into_detail(self) -> Detail {
        Detail::Conv2d(*self)
    }
}
impl IntoDetail for &StridedCopy {
    fn into_detail(self) -> Detail {
        Detail::Strided(*self)
    }
}
impl IntoDetail for &SliceDims {
    fn into_detail(self) -> Detail {
        Detail::Slice(*self)
    }
}
impl IntoDetail for &ChunkTable {
    fn into_detail(self) -> Detail {
        Detail::Chunks(self.count)
    }
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
    fn fill_zero(&self, t: &mut Tensor) -> Result<()> {
        let mut r = Rec::new("fill_zero");
        r.t("t", t);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.fill_zero(t)
    }
    fn copy(&self, dst: &mut Tensor, src: &Tensor) -> Result<()> {
        let mut r = Rec::new("copy");
        r.t("dst", dst);
        r.t("src", src);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.copy(dst, src)
    }
    fn synchronize(&self) -> Result<()> {
        CPU.synchronize()
    }
}

// Generated from src/backend/api/*.rs by tools/gen_record.py (one delegating method per op: each
// tensor argument logged under its parameter or field name, shape descriptors as details, integer
// and flag arguments as numbers); the compiler checks that every op of `Backend` is here.

impl api::AttentionOps for Recorder {
    fn attention(&self, o: AttentionOut, x: Qkv, s: &AttnShape) -> Result<()> {
        let mut r = Rec::new("attention");
        r.t("out", &*o.out);
        r.t("lse", &*o.lse);
        r.t("q", x.q);
        r.t("k", x.k);
        r.t("v", x.v);
        r.detail(s);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.attention(o, x, s)
    }
    fn attention_backward(&self, a: AttentionBackward, s: &AttnShape) -> Result<()> {
        let mut r = Rec::new("attention_backward");
        r.attn_grads(&a.grads);
        r.t("q", a.q);
        r.t("k", a.k);
        r.t("v", a.v);
        r.t("out", a.out);
        r.t("lse", a.lse);
        r.t("dout", a.dout);
        r.detail(s);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.attention_backward(a, s)
    }
}

impl api::BatchNormOps for Recorder {
    fn batch_norm_train(&self, out: BatchNormTrainOut, a: NormInput, momentum: f32) -> Result<()> {
        let mut r = Rec::new("batch_norm_train");
        r.t("y", &*out.y);
        r.t("mean", &*out.mean);
        r.t("rstd", &*out.rstd);
        r.t("running_mean", &*out.running_mean);
        r.t("running_var", &*out.running_var);
        r.t("x", a.x);
        r.t("w", a.w);
        r.t("b", a.b);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.batch_norm_train(out, a, momentum)
    }
    fn batch_norm_eval(
        &self,
        y: &mut Tensor,
        a: NormInput,
        running: BatchNormRunning,
    ) -> Result<()> {
        let mut r = Rec::new("batch_norm_eval");
        r.t("y", &*y);
        r.t("x", a.x);
        r.t("w", a.w);
        r.t("b", a.b);
        r.t("mean", running.mean);
        r.t("var", running.var);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.batch_norm_eval(y, a, running)
    }
    fn batch_norm_backward(&self, a: NormBackward) -> Result<()> {
        let mut r = Rec::new("batch_norm_backward");
        r.t("dx", &*a.dx);
        r.t("dw", &*a.dw);
        r.t("db", &*a.db);
        r.t("dy", a.dy);
        r.t("x", a.x);
        r.t("w", a.w);
        r.t("mean", a.mean);
        r.t("rstd", a.rstd);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.batch_norm_backward(a)
    }
}

impl api::ChannelsOps for Recorder {
    fn copy_strided(&self, dst: &mut Tensor, src: &Tensor, c: &StridedCopy) -> Result<()> {
        let mut r = Rec::new("copy_strided");
        r.t("dst", &*dst);
        r.t("src", src);
        r.detail(c);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.copy_strided(dst, src, c)
    }
    fn permute_last2(&self, out: &mut Tensor, x: &Tensor, rows: usize, cols: usize) -> Result<()> {
        let mut r = Rec::new("permute_last2");
        r.t("out", &*out);
        r.t("x", x);
        r.num("rows", rows);
        r.num("cols", cols);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.permute_last2(out, x, rows, cols)
    }
}

impl api::Conv1dOps for Recorder {
    fn conv1d(&self, y: &mut Tensor, a: ConvInput, s: &Conv1dShape) -> Result<()> {
        let mut r = Rec::new("conv1d");
        r.t("y", &*y);
        r.t("x", a.x);
        r.t("w", a.w);
        r.opt("bias", a.bias);
        r.detail(s);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.conv1d(y, a, s)
    }
    fn conv1d_backward(&self, a: ConvBackward, s: &Conv1dShape) -> Result<()> {
        let mut r = Rec::new("conv1d_backward");
        r.opt("dx", a.dx.as_deref());
        r.t("dw", &*a.dw);
        r.opt("db", a.db.as_deref());
        r.t("dy", a.dy);
        r.t("x", a.x);
        r.t("w", a.w);
        r.detail(s);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.conv1d_backward(a, s)
    }
    fn weight_norm(&self, w: &mut Tensor, norm: &mut Tensor, a: WeightNormInput) -> Result<()> {
        let mut r = Rec::new("weight_norm");
        r.t("w", &*w);
        r.t("norm", &*norm);
        r.t("g", a.g);
        r.t("v", a.v);
        r.num("outer", a.outer);
        r.num("inner", a.inner);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.weight_norm(w, norm, a)
    }
    fn weight_norm_backward(&self, a: WeightNormBackward) -> Result<()> {
        let mut r = Rec::new("weight_norm_backward");
        r.t("dg", &*a.dg);
        r.t("dv", &*a.dv);
        r.t("dw", a.dw);
        r.t("g", a.g);
        r.t("v", a.v);
        r.t("norm", a.norm);
        r.num("outer", a.outer);
        r.num("inner", a.inner);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.weight_norm_backward(a)
    }
    fn transpose_last2(&self, out: &mut Tensor, x: &Tensor, m: usize, n: usize) -> Result<()> {
        let mut r = Rec::new("transpose_last2");
        r.t("out", &*out);
        r.t("x", x);
        r.num("m", m);
        r.num("n", n);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.transpose_last2(out, x, m, n)
    }
    fn slice_axis(&self, out: &mut Tensor, x: &Tensor, d: &SliceDims) -> Result<()> {
        let mut r = Rec::new("slice_axis");
        r.t("out", &*out);
        r.t("x", x);
        r.detail(d);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.slice_axis(out, x, d)
    }
    fn slice_axis_backward(&self, dx: &mut Tensor, dy: &Tensor, d: &SliceDims) -> Result<()> {
        let mut r = Rec::new("slice_axis_backward");
        r.t("dx", &*dx);
        r.t("dy", dy);
        r.detail(d);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.slice_axis_backward(dx, dy, d)
    }
}

impl api::Conv2dOps for Recorder {
    fn conv2d(&self, y: &mut Tensor, a: ConvInput, s: &Conv2dShape) -> Result<()> {
        let mut r = Rec::new("conv2d");
        r.t("y", &*y);
        r.t("x", a.x);
        r.t("w", a.w);
        r.opt("bias", a.bias);
        r.detail(s);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.conv2d(y, a, s)
    }
    fn conv2d_backward(&self, a: ConvBackward, s: &Conv2dShape) -> Result<()> {
        let mut r = Rec::new("conv2d_backward");
        r.opt("dx", a.dx.as_deref());
        r.t("dw", &*a.dw);
        r.opt("db", a.db.as_deref());
        r.t("dy", a.dy);
        r.t("x", a.x);
        r.t("w", a.w);
        r.detail(s);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.conv2d_backward(a, s)
    }
}

impl api::DropoutOps for Recorder {
    fn dropout(&self, out: &mut Tensor, x: &Tensor, p: f32, key: DropoutKey) -> Result<()> {
        let mut r = Rec::new("dropout");
        r.t("out", &*out);
        r.t("x", x);
        r.num("seed", key.seed as usize);
        r.num("step", key.step as usize);
        r.num("stream_id", key.stream_id as usize);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.dropout(out, x, p, key)
    }
}

impl api::ElementwiseOps for Recorder {
    fn add(&self, out: &mut Tensor, a: &Tensor, b: &Tensor) -> Result<()> {
        let mut r = Rec::new("add");
        r.t("out", &*out);
        r.t("a", a);
        r.t("b", b);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.add(out, a, b)
    }
    fn bias_add(&self, out: &mut Tensor, x: &Tensor, bias: &Tensor) -> Result<()> {
        let mut r = Rec::new("bias_add");
        r.t("out", &*out);
        r.t("x", x);
        r.t("bias", bias);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.bias_add(out, x, bias)
    }
    fn gelu(&self, out: &mut Tensor, x: &Tensor) -> Result<()> {
        let mut r = Rec::new("gelu");
        r.t("out", &*out);
        r.t("x", x);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.gelu(out, x)
    }
    fn gelu_backward(&self, dx: &mut Tensor, x: &Tensor, dy: &Tensor) -> Result<()> {
        let mut r = Rec::new("gelu_backward");
        r.t("dx", &*dx);
        r.t("x", x);
        r.t("dy", dy);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.gelu_backward(dx, x, dy)
    }
    fn scale(&self, x: &mut Tensor, s: f32) -> Result<()> {
        let mut r = Rec::new("scale");
        r.t("x", &*x);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.scale(x, s)
    }
    fn cast(&self, out: &mut Tensor, x: &Tensor) -> Result<()> {
        let mut r = Rec::new("cast");
        r.t("out", &*out);
        r.t("x", x);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.cast(out, x)
    }
}

impl api::FusionOps for Recorder {
    fn project_l2norm(&self, out: ProjectOut, x: &Tensor, w: &Tensor, eps: f32) -> Result<()> {
        let mut r = Rec::new("project_l2norm");
        r.t("e", &*out.e);
        r.t("norm", &*out.norm);
        r.t("x", x);
        r.t("w", w);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.project_l2norm(out, x, w, eps)
    }
    fn project_l2norm_backward(&self, a: ProjectBackward) -> Result<()> {
        let mut r = Rec::new("project_l2norm_backward");
        r.t("dx", &*a.dx);
        r.t("dw", &*a.dw);
        r.t("dz", &*a.dz);
        r.t("x", a.x);
        r.t("w", a.w);
        r.t("e", a.e);
        r.t("norm", a.norm);
        r.t("de", a.de);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.project_l2norm_backward(a)
    }
    fn similarity(&self, logits: &mut Tensor, a: SimilarityInput) -> Result<()> {
        let mut r = Rec::new("similarity");
        r.t("logits", &*logits);
        r.t("ei", a.ei);
        r.t("ew", a.ew);
        r.t("log_scale", a.log_scale);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.similarity(logits, a)
    }
    fn infonce(&self, lse: &mut Tensor, losses: &mut Tensor, logits: &Tensor) -> Result<()> {
        let mut r = Rec::new("infonce");
        r.t("lse", &*lse);
        r.t("losses", &*losses);
        r.t("logits", logits);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.infonce(lse, losses, logits)
    }
    fn infonce_backward(&self, a: InfonceBackward) -> Result<()> {
        let mut r = Rec::new("infonce_backward");
        r.t("dlogits", &*a.dlogits);
        r.t("logits", a.logits);
        r.t("lse", a.lse);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.infonce_backward(a)
    }
    fn similarity_backward(&self, a: SimilarityBackward) -> Result<()> {
        let mut r = Rec::new("similarity_backward");
        r.t("dei", &*a.dei);
        r.t("dew", &*a.dew);
        r.t("dlog_scale", &*a.dlog_scale);
        r.t("ei", a.ei);
        r.t("ew", a.ew);
        r.t("log_scale", a.log_scale);
        r.t("logits", a.logits);
        r.t("dlogits", a.dlogits);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.similarity_backward(a)
    }
}

impl api::LayerNormOps for Recorder {
    fn layer_norm(&self, out: LayerNormOut, a: NormInput) -> Result<()> {
        let mut r = Rec::new("layer_norm");
        r.t("y", &*out.y);
        r.t("mean", &*out.mean);
        r.t("rstd", &*out.rstd);
        r.t("x", a.x);
        r.t("w", a.w);
        r.t("b", a.b);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.layer_norm(out, a)
    }
    fn layer_norm_backward(&self, a: NormBackward) -> Result<()> {
        let mut r = Rec::new("layer_norm_backward");
        r.t("dx", &*a.dx);
        r.t("dw", &*a.dw);
        r.t("db", &*a.db);
        r.t("dy", a.dy);
        r.t("x", a.x);
        r.t("w", a.w);
        r.t("mean", a.mean);
        r.t("rstd", a.rstd);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.layer_norm_backward(a)
    }
}

impl api::LossOps for Recorder {
    fn nll(&self, out: NllOut, logits: &Tensor, targets: &Tensor) -> Result<()> {
        let mut r = Rec::new("nll");
        r.t("losses", &*out.losses);
        r.t("valid", &*out.valid);
        r.t("logits", logits);
        r.t("targets", targets);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.nll(out, logits, targets)
    }
    fn nll_backward(&self, a: CrossEntropyBackward) -> Result<()> {
        let mut r = Rec::new("nll_backward");
        r.t("dlogits", &*a.dlogits);
        r.t("logits", a.logits);
        r.t("targets", a.targets);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.nll_backward(a)
    }
    fn soft_ce(&self, losses: &mut Tensor, logits: &Tensor, targets: &Tensor) -> Result<()> {
        let mut r = Rec::new("soft_ce");
        r.t("losses", &*losses);
        r.t("logits", logits);
        r.t("targets", targets);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.soft_ce(losses, logits, targets)
    }
    fn soft_ce_backward(&self, a: CrossEntropyBackward) -> Result<()> {
        let mut r = Rec::new("soft_ce_backward");
        r.t("dlogits", &*a.dlogits);
        r.t("logits", a.logits);
        r.t("targets", a.targets);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.soft_ce_backward(a)
    }
    fn mse(&self, sq: &mut Tensor, x: &Tensor, y: &Tensor) -> Result<()> {
        let mut r = Rec::new("mse");
        r.t("sq", &*sq);
        r.t("x", x);
        r.t("y", y);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.mse(sq, x, y)
    }
    fn mse_backward(&self, dx: &mut Tensor, x: &Tensor, y: &Tensor, scale: f32) -> Result<()> {
        let mut r = Rec::new("mse_backward");
        r.t("dx", &*dx);
        r.t("x", x);
        r.t("y", y);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.mse_backward(dx, x, y, scale)
    }
    fn masked_row_mse(&self, row_loss: &mut Tensor, a: MaskedRows) -> Result<()> {
        let mut r = Rec::new("masked_row_mse");
        r.t("row_loss", &*row_loss);
        r.t("x", a.x);
        r.t("y", a.y);
        r.t("mask", a.mask);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.masked_row_mse(row_loss, a)
    }
    fn masked_row_mse_backward(&self, dx: &mut Tensor, a: MaskedRows, scale: f32) -> Result<()> {
        let mut r = Rec::new("masked_row_mse_backward");
        r.t("dx", &*dx);
        r.t("x", a.x);
        r.t("y", a.y);
        r.t("mask", a.mask);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.masked_row_mse_backward(dx, a, scale)
    }
}

impl api::MatmulOps for Recorder {
    fn matmul(&self, c: &mut Tensor, x: MatmulInput, s: &MatmulShape) -> Result<()> {
        let mut r = Rec::new("matmul");
        r.t("c", &*c);
        r.t("a", x.a);
        r.t("b", x.b);
        r.opt("bias", x.bias);
        r.num("accumulate", x.accumulate as usize);
        r.detail(s);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.matmul(c, x, s)
    }
    fn sum_rows(&self, out: &mut Tensor, x: &Tensor, accumulate: bool) -> Result<()> {
        let mut r = Rec::new("sum_rows");
        r.t("out", &*out);
        r.t("x", x);
        r.num("accumulate", accumulate as usize);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.sum_rows(out, x, accumulate)
    }
}

impl api::OptimOps for Recorder {
    fn grad_norm_sq(
        &self,
        norm_sq: &mut Tensor,
        grads: &Tensor,
        chunks: &ChunkTable,
    ) -> Result<()> {
        let mut r = Rec::new("grad_norm_sq");
        r.t("norm_sq", &*norm_sq);
        r.t("grads", grads);
        r.detail(chunks);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.grad_norm_sq(norm_sq, grads, chunks)
    }
    fn adamw(&self, a: AdamWStep) -> Result<()> {
        let mut r = Rec::new("adamw");
        r.t("values", &*a.values);
        r.t("m", &*a.m);
        r.t("v", &*a.v);
        r.opt("compute", a.compute.as_deref());
        r.t("grads", a.grads);
        r.detail(a.chunks);
        r.t("norm_sq", a.norm_sq);
        r.num("t", a.t as usize);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.adamw(a)
    }
}

impl api::ReduceOps for Recorder {
    fn sum(&self, out: &mut Tensor, x: &Tensor, square: bool, scale: f32) -> Result<()> {
        let mut r = Rec::new("sum");
        r.t("out", &*out);
        r.t("x", x);
        r.num("square", square as usize);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.sum(out, x, square, scale)
    }
}

impl api::ReluOps for Recorder {
    fn relu(&self, y: &mut Tensor, x: &Tensor) -> Result<()> {
        let mut r = Rec::new("relu");
        r.t("y", &*y);
        r.t("x", x);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.relu(y, x)
    }
    fn relu_backward(&self, dx: &mut Tensor, y: &Tensor, dy: &Tensor) -> Result<()> {
        let mut r = Rec::new("relu_backward");
        r.t("dx", &*dx);
        r.t("y", y);
        r.t("dy", dy);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.relu_backward(dx, y, dy)
    }
}

impl api::SoftmaxOps for Recorder {
    fn softmax(&self, y: &mut Tensor, x: &Tensor) -> Result<()> {
        let mut r = Rec::new("softmax");
        r.t("y", &*y);
        r.t("x", x);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.softmax(y, x)
    }
    fn softmax_backward(&self, dx: &mut Tensor, y: &Tensor, dy: &Tensor) -> Result<()> {
        let mut r = Rec::new("softmax_backward");
        r.t("dx", &*dx);
        r.t("y", y);
        r.t("dy", dy);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.softmax_backward(dx, y, dy)
    }
}

impl api::SsimOps for Recorder {
    fn ssim(&self, p: ImagePair) -> Result<f32> {
        let mut r = Rec::new("ssim");
        r.t("x", p.x);
        r.t("y", p.y);
        let _g = r.push();
        if dry() {
            return Ok(0.0);
        }
        CPU.ssim(p)
    }
    fn ms_ssim(&self, p: ImagePair, grad: Option<(&mut Tensor, f32)>) -> Result<f32> {
        let mut r = Rec::new("ms_ssim");
        r.t("x", p.x);
        r.t("y", p.y);
        if let Some((t, _)) = &grad {
            r.t("grad", t);
        }
        let _g = r.push();
        if dry() {
            return Ok(0.0);
        }
        CPU.ms_ssim(p, grad)
    }
}

impl api::StftMelOps for Recorder {
    fn log_mel(&self, out: &mut Tensor, x: &Tensor, lm: &LogMel<f32>) -> Result<()> {
        let mut r = Rec::new("log_mel");
        r.t("out", &*out);
        r.t("x", x);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.log_mel(out, x, lm)
    }
    fn log_mel_backward(&self, a: LogMelBackward, lm: &LogMel<f32>) -> Result<()> {
        let mut r = Rec::new("log_mel_backward");
        r.t("dx", &*a.dx);
        r.t("x", a.x);
        r.t("dy", a.dy);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.log_mel_backward(a, lm)
    }
    fn mel_image_finish(
        &self,
        images: &mut Tensor,
        logmel: &Tensor,
        plan: &MelImagePlan,
    ) -> Result<()> {
        let mut r = Rec::new("mel_image_finish");
        r.t("images", &*images);
        r.t("logmel", logmel);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.mel_image_finish(images, logmel, plan)
    }
    fn mean_over_channels(&self, out: &mut Tensor, x: &Tensor) -> Result<()> {
        let mut r = Rec::new("mean_over_channels");
        r.t("out", &*out);
        r.t("x", x);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.mean_over_channels(out, x)
    }
}

impl api::TokenOps for Recorder {
    fn patchify(&self, patches: &mut Tensor, img: &Tensor, p: usize) -> Result<()> {
        let mut r = Rec::new("patchify");
        r.t("patches", &*patches);
        r.t("img", img);
        r.num("p", p);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.patchify(patches, img, p)
    }
    fn unpatchify(&self, img: &mut Tensor, patches: &Tensor, p: usize) -> Result<()> {
        let mut r = Rec::new("unpatchify");
        r.t("img", &*img);
        r.t("patches", patches);
        r.num("p", p);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.unpatchify(img, patches, p)
    }
    fn gather_rows(&self, out: &mut Tensor, a: GatherInput) -> Result<()> {
        let mut r = Rec::new("gather_rows");
        r.t("out", &*out);
        r.t("src", a.src);
        r.t("idx", a.idx);
        r.opt("fill", a.fill);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.gather_rows(out, a)
    }
    fn gather_rows_backward(&self, g: GatherGrads, dout: &Tensor, idx: &Tensor) -> Result<()> {
        let mut r = Rec::new("gather_rows_backward");
        r.t("dsrc", &*g.dsrc);
        r.opt("dfill", g.dfill.as_deref());
        r.t("dout", dout);
        r.t("idx", idx);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.gather_rows_backward(g, dout, idx)
    }
}

impl api::UpsampleOps for Recorder {
    fn upsample_nearest(&self, out: &mut Tensor, x: &Tensor, k: usize) -> Result<()> {
        let mut r = Rec::new("upsample_nearest");
        r.t("out", &*out);
        r.t("x", x);
        r.num("k", k);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.upsample_nearest(out, x, k)
    }
    fn upsample_nearest_backward(&self, dx: &mut Tensor, dy: &Tensor, k: usize) -> Result<()> {
        let mut r = Rec::new("upsample_nearest_backward");
        r.t("dx", &*dx);
        r.t("dy", dy);
        r.num("k", k);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.upsample_nearest_backward(dx, dy, k)
    }
    fn upsample_bilinear(&self, out: &mut Tensor, x: &Tensor, align_corners: bool) -> Result<()> {
        let mut r = Rec::new("upsample_bilinear");
        r.t("out", &*out);
        r.t("x", x);
        r.num("align_corners", align_corners as usize);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.upsample_bilinear(out, x, align_corners)
    }
    fn upsample_bilinear_backward(
        &self,
        dx: &mut Tensor,
        dy: &Tensor,
        align_corners: bool,
    ) -> Result<()> {
        let mut r = Rec::new("upsample_bilinear_backward");
        r.t("dx", &*dx);
        r.t("dy", dy);
        r.num("align_corners", align_corners as usize);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.upsample_bilinear_backward(dx, dy, align_corners)
    }
}

impl api::Wav2vec2Ops for Recorder {
    fn gumbel_forward(&self, a: GumbelArgs) -> Result<()> {
        let mut r = Rec::new("gumbel_forward");
        r.t("hard", &*a.hard);
        r.t("soft", &*a.soft);
        r.t("logits", a.logits);
        r.num("seed", a.seed as usize);
        r.num("step", a.step as usize);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.gumbel_forward(a)
    }
    fn codevector_gather(&self, q: &mut Tensor, book: Codebook) -> Result<()> {
        let mut r = Rec::new("codevector_gather");
        r.t("q", &*q);
        r.t("code", book.code);
        r.t("hard", book.hard);
        r.num("groups", book.groups);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.codevector_gather(q, book)
    }
    fn codevector_backward(&self, a: CodevectorBackward) -> Result<()> {
        let mut r = Rec::new("codevector_backward");
        r.t("dlogits", &*a.dlogits);
        r.t("dcode", &*a.dcode);
        r.t("soft", a.soft);
        r.t("hard", a.hard);
        r.t("code", a.code);
        r.t("dq", a.dq);
        r.num("groups", a.groups);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.codevector_backward(a)
    }
    fn codebook_perplexity(&self, a: PerplexityArgs) -> Result<()> {
        let mut r = Rec::new("codebook_perplexity");
        r.t("ppl", &*a.ppl);
        r.t("dlogits", &*a.dlogits);
        r.t("logits", a.logits);
        r.t("weight", a.weight);
        r.num("groups", a.groups);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.codebook_perplexity(a)
    }
    fn contrastive(&self, out: ContrastiveOut, a: ContrastiveArgs) -> Result<()> {
        let mut r = Rec::new("contrastive");
        r.t("loss", &*out.loss);
        r.t("dc", &*out.dc);
        r.t("dq", &*out.dq);
        r.t("c", a.c);
        r.t("q", a.q);
        r.t("cand", a.idx.cand);
        r.t("offsets", a.idx.offsets);
        r.t("entries", a.idx.entries);
        let _g = r.push();
        if dry() {
            return Ok(());
        }
        CPU.contrastive(out, a)
    }
}
