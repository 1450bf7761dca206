//! The parameter store (llm.c's layout): one flat fp32 buffer of values, one of gradients, the
//! AdamW moments (made at the first optimizer step) and, under mixed precision, one bf16 compute
//! copy. Every parameter of the model is a named view (offset, shape) of those buffers, so
//! zeroing the gradients is one memset, the gradient norm one reduction and AdamW one launch;
//! a checkpoint is the buffers plus the name table.
//!
//! ```text
//! let mut model = Vit::new(cfg, seed)?;
//! let mut store = ParamStore::pack(&mut model, &device)?; // model's params become views
//! let (out, cache) = model.forward(&x, None)?;
//! store.zero_grad()?;
//! model.backward(&cache, &dout, &[], false, &mut store.grads)?;
//! opt.step(&mut store, lr)?;                              // updates the views in place
//! ```

use super::param::{Param, Parameters};
use crate::backend::Device;
use crate::ops::{self, ChunkTable};
use crate::tensor::{DType, Tensor};
use anyhow::{bail, Context, Result};
use std::ops::Range;
use std::sync::Mutex;

/// Parameter offsets are multiples of this many elements (256 bytes of fp32), so vector loads
/// of any parameter are aligned; the gaps stay zero.
pub const ALIGN: usize = 64;

/// One parameter's place in the store.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamEntry {
    /// Checkpoint name (timm / HF).
    pub name: String,
    pub offset: usize,
    pub shape: Vec<usize>,
    /// Updated by the optimizer (false: fixed tables, running statistics, frozen sub-models).
    pub trainable: bool,
    /// Weight decay applies (timm's groups: not to biases, norms, 1-D tensors, tokens and
    /// position tables).
    pub decay: bool,
    /// Learning-rate multiplier (layer-wise decay in fine-tuning); 1 by default.
    pub lr_scale: f32,
}

impl ParamEntry {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// timm/MAE's rule for which parameters are decayed.
pub fn default_decay(name: &str, shape: &[usize]) -> bool {
    !(shape.len() <= 1
        || name.ends_with(".bias")
        || name.contains("norm")
        || name.ends_with("token")
        || name.ends_with("pos_embed"))
}

/// The gradients of a packed model: one flat fp32 buffer, a view of it per parameter.
/// Backward passes add (`+=`) parameter gradients here.
#[derive(Debug)]
pub struct Grads {
    flat: Tensor,
    /// The store's value buffer, to check that a parameter belongs to this store.
    values: Tensor,
    /// Told when gradients become final during a backward pass (data-parallel training
    /// starts their all-reduce then); `None` outside of that.
    watch: Option<Watch>,
    /// bf16 scratch as long as `flat` (made at the first bf16 slot): parameter p's bf16 slot
    /// is its range here, zero until committed.
    shadow: Option<Tensor>,
    /// What the scratch holds; behind a lock so that readers holding `&self` can settle.
    scratch: Mutex<Scratch>,
}

/// Ranges of the bf16 scratch buffer.
#[derive(Debug, Default)]
struct Scratch {
    /// Committed but not yet added into `flat`. [`Grads::settle`] adds them all in one launch
    /// (`ops::drain_add`) before anything reads the gradients, instead of a cast and an add
    /// per parameter.
    pending: Vec<Range<usize>>,
    /// Handed out as slots and not committed yet.
    lent: Vec<Range<usize>>,
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// Receives the parts of the flat gradient buffer whose gradients are final for the current
/// backward pass, as soon as they are: the data-parallel trainer starts reducing them over the
/// ranks while the backward pass goes on (PyTorch DDP's bucket hooks).
pub trait GradWatch: Send {
    /// The gradients in `ranges` (element ranges of `flat`) will not change again in this
    /// backward pass. Their writes may still be queued on the device's stream.
    fn ready(&mut self, flat: &Tensor, ranges: &[std::ops::Range<usize>]) -> Result<()>;
}

/// A watch and what it has been told.
struct Watch {
    sink: Box<dyn GradWatch>,
    /// Parameter ranges written since the last [`Grads::mark_final`].
    touched: Vec<std::ops::Range<usize>>,
    /// Ranges declared final: a later write into one is a model bug (its reduced gradient
    /// would miss that write), reported instead of training on a wrong gradient.
    done: Vec<std::ops::Range<usize>>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Watch {{ {} touched, {} final }}",
            self.touched.len(),
            self.done.len()
        )
    }
}

/// Where a backward pass writes one parameter's gradient: the gradient view itself when the
/// pass computes in fp32, or zeroed scratch in the compute dtype (bf16: the parameter's range
/// of the store's bf16 scratch buffer) that is widened and added, as PyTorch's autocast does,
/// once [`Grads::commit`] has handed it back and the gradients are read ([`Grads::settle`]).
pub struct GradSlot {
    pub buf: Tensor,
    /// The range of the scratch buffer this slot is (bf16 slots).
    range: Option<std::ops::Range<usize>>,
}

impl std::ops::Deref for GradSlot {
    type Target = Tensor;
    fn deref(&self) -> &Tensor {
        &self.buf
    }
}
impl std::ops::DerefMut for GradSlot {
    fn deref_mut(&mut self) -> &mut Tensor {
        &mut self.buf
    }
}

impl Grads {
    /// The gradient view of `p` (fp32, p's shape), with every committed contribution added.
    pub fn of(&mut self, p: &Param) -> Result<Tensor> {
        self.view(p)
    }

    /// The whole flat buffer (with the alignment gaps, which stay zero), every committed
    /// contribution added.
    pub fn flat(&self) -> Result<&Tensor> {
        self.settle()?;
        Ok(&self.flat)
    }

    /// Adds the committed bf16 scratch into the fp32 gradients and zeroes it: one launch over
    /// the span of the pending ranges (the rest of the span is zero scratch, which adds
    /// nothing). Readers of the gradients call it; a no-op when nothing is pending.
    pub fn settle(&self) -> Result<()> {
        let mut sc = self.scratch();
        let (Some(shadow), Some(start), Some(end)) = (
            &self.shadow,
            sc.pending.iter().map(|r| r.start).min(),
            sc.pending.iter().map(|r| r.end).max(),
        ) else {
            return Ok(());
        };
        // A slot still lent inside the span holds a gradient being computed: then drain the
        // pending ranges one by one instead of the span.
        let spans: Vec<Range<usize>> = if sc.lent.iter().any(|l| overlaps(l, &(start..end))) {
            std::mem::take(&mut sc.pending)
        } else {
            sc.pending.clear();
            std::iter::once(start..end).collect()
        };
        for r in spans {
            let mut acc = self.flat.view(r.start, &[r.len()])?;
            let mut x = shadow.view(r.start, &[r.len()])?;
            ops::drain_add(&mut acc, &mut x)?;
        }
        Ok(())
    }

    fn scratch(&self) -> std::sync::MutexGuard<'_, Scratch> {
        self.scratch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops committed or abandoned scratch without adding it (the gradients are being
    /// zeroed): the scratch is zero again afterwards.
    fn discard_pending(&self) -> Result<()> {
        let ranges: Vec<_> = {
            let mut sc = self.scratch();
            let Scratch { pending, lent } = &mut *sc;
            pending.drain(..).chain(lent.drain(..)).collect()
        };
        let (Some(shadow), Some(start), Some(end)) = (
            &self.shadow,
            ranges.iter().map(|r| r.start).min(),
            ranges.iter().map(|r| r.end).max(),
        ) else {
            return Ok(());
        };
        let mut x = shadow.view(start, &[end - start])?;
        x.device().run().fill_zero(&mut x)
    }

    fn view(&mut self, p: &Param) -> Result<Tensor> {
        if !p.value.shares_storage(&self.values) {
            bail!(
                "a parameter of shape {:?} is not part of this parameter store (pack the whole model with ParamStore::pack before its backward pass)",
                p.value.shape
            );
        }
        let at = p.value.offset();
        let r = at..at + p.value.numel();
        let held = self.scratch().pending.iter().any(|d| overlaps(d, &r));
        if held {
            // p's scratch holds a committed gradient: add it before p's gradient is read or
            // its scratch handed out again
            self.settle()?;
        }
        if let Some(w) = &mut self.watch {
            let r = at..at + p.value.numel();
            if w.done.iter().any(|d| d.start < r.end && r.start < d.end) {
                bail!(
                    "a parameter of shape {:?} (elements {r:?} of the gradient buffer) receives a gradient after its gradient was declared final in this backward pass; its all-reduce would miss it (a model calls Grads::mark_final too early)",
                    p.value.shape
                );
            }
            w.touched.push(r);
        }
        self.flat.view(at, &p.value.shape)
    }

    /// Starts telling `sink` which gradients are final (see [`Grads::mark_final`]).
    pub fn watch(&mut self, sink: Box<dyn GradWatch>) {
        self.watch = Some(Watch {
            sink,
            touched: Vec::new(),
            done: Vec::new(),
        });
    }

    /// Stops watching and hands the sink back. Gradients written since the last mark have not
    /// been reported: the caller deals with them (the data-parallel step reduces every bucket
    /// not reduced yet).
    pub fn unwatch(&mut self) -> Option<Box<dyn GradWatch>> {
        self.watch.take().map(|w| w.sink)
    }

    /// Declares the parameter gradients written since the previous mark final for this
    /// backward pass. Models call it after each transformer block's backward, whose
    /// parameters nothing later touches; without a watch it does nothing.
    pub fn mark_final(&mut self) -> Result<()> {
        let Some(w) = &mut self.watch else {
            return Ok(());
        };
        if w.touched.is_empty() {
            return Ok(());
        }
        let ranges = std::mem::take(&mut w.touched);
        self.settle()?;
        let w = self.watch.as_mut().expect("checked above");
        w.sink.ready(&self.flat, &ranges)?;
        w.done.extend(ranges);
        Ok(())
    }

    /// A buffer for `p`'s gradient as computed in `dtype`; hand it back with `commit`.
    pub fn slot(&mut self, p: &Param, dtype: DType) -> Result<GradSlot> {
        let view = self.view(p)?;
        if dtype == DType::F32 {
            return Ok(GradSlot {
                buf: view,
                range: None,
            });
        }
        if dtype != DType::BF16 {
            bail!("parameter gradients are computed in f32 or bf16, not {dtype}");
        }
        if self.shadow.is_none() {
            let n = self.flat.numel();
            self.shadow = Some(view.device().backend().zeros(&[n], DType::BF16)?);
        }
        let at = p.value.offset();
        let shadow = self.shadow.as_ref().expect("made above");
        let buf = shadow.view(at, &view.shape)?;
        let range = at..at + view.numel();
        self.scratch().lent.push(range.clone());
        Ok(GradSlot {
            buf,
            range: Some(range),
        })
    }

    /// Hands a slot back: an fp32 slot was the gradient itself; a bf16 slot's range waits to
    /// be added by [`Grads::settle`].
    pub fn commit(&mut self, s: GradSlot) -> Result<()> {
        if let Some(r) = s.range {
            let mut sc = self.scratch();
            if let Some(i) = sc.lent.iter().position(|l| *l == r) {
                sc.lent.swap_remove(i);
            }
            sc.pending.push(r);
        }
        Ok(())
    }

    /// p's gradient += g (g has p's element count, any float dtype).
    pub fn accumulate(&mut self, p: &Param, g: &Tensor) -> Result<()> {
        let mut target = self.view(p)?;
        if g.numel() != target.numel() {
            bail!(
                "a gradient of shape {:?} does not fit a parameter of shape {:?}",
                g.shape,
                target.shape
            );
        }
        let g = if g.dtype == DType::F32 {
            g.clone()
        } else {
            ops::cast(g, DType::F32)?
        };
        let g = g.reshape(&target.shape.clone())?;
        ops::add_assign(&mut target, &g)
    }
}

/// A model's parameters in flat buffers; see the module documentation.
#[derive(Debug)]
pub struct ParamStore {
    device: Device,
    entries: Vec<ParamEntry>,
    values: Tensor,
    pub grads: Grads,
    /// AdamW's first and second moments, made at the first step.
    moments: Option<(Tensor, Tensor)>,
    /// The bf16 compute copy under mixed precision.
    compute: Option<Tensor>,
    /// What the optimizer updates, in chunks (rebuilt when flags change).
    chunks: Option<ChunkTable>,
}

impl ParamStore {
    /// Packs every parameter of `model` into flat buffers on `device` (one upload) and turns
    /// the model's parameters into views of them. Values are kept; gradients start at zero.
    pub fn pack(model: &mut dyn Parameters, device: &Device) -> Result<Self> {
        let mut entries = Vec::new();
        let mut host: Vec<f32> = Vec::new();
        model.visit("", &mut |name, p| {
            let offset = host.len().next_multiple_of(ALIGN);
            host.resize(offset, 0.0);
            host.extend(
                p.value
                    .to_vec_f32()
                    .with_context(|| format!("reading parameter {name}"))?,
            );
            let shape = p.value.shape.clone();
            entries.push(ParamEntry {
                name: name.to_string(),
                offset,
                decay: default_decay(name, &shape),
                shape,
                trainable: p.trainable,
                lr_scale: 1.0,
            });
            Ok(())
        })?;
        for w in entries.windows(2) {
            if w[0].name == w[1].name {
                bail!("two parameters are named {}", w[0].name);
            }
        }
        let n = host.len().next_multiple_of(ALIGN).max(ALIGN);
        host.resize(n, 0.0);
        let values = Tensor::from_f32(&[n], host)?.to_device(device)?;
        let grads = Grads {
            flat: device.backend().zeros(&[n], DType::F32)?,
            values: values.clone(),
            watch: None,
            shadow: None,
            scratch: Mutex::default(),
        };
        let store = ParamStore {
            device: device.clone(),
            entries,
            values,
            grads,
            moments: None,
            compute: None,
            chunks: None,
        };
        store.repoint(model)?;
        Ok(store)
    }

    /// Points every parameter of `model` at its views of this store's buffers.
    fn repoint(&self, model: &mut dyn Parameters) -> Result<()> {
        let mut i = 0;
        let entries = &self.entries;
        model.visit("", &mut |name, p| {
            let Some(e) = entries.get(i).filter(|e| e.name == name) else {
                bail!("the model's parameters changed since it was packed (at {name})");
            };
            p.value = self.values.view(e.offset, &e.shape)?;
            p.compute = match &self.compute {
                Some(c) => Some(c.view(e.offset, &e.shape)?),
                None => None,
            };
            i += 1;
            Ok(())
        })?;
        if i != entries.len() {
            bail!("the model has {i} parameters, the store {}", entries.len());
        }
        Ok(())
    }

    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn entries(&self) -> &[ParamEntry] {
        &self.entries
    }
    pub fn entry(&self, name: &str) -> Option<&ParamEntry> {
        self.entries.iter().find(|e| e.name == name)
    }
    /// Elements of every parameter (without the alignment gaps).
    pub fn num_params(&self) -> usize {
        self.entries.iter().map(|e| e.numel()).sum()
    }
    /// Elements of the trainable parameters.
    pub fn num_trainable(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.trainable)
            .map(|e| e.numel())
            .sum()
    }
    /// The flat value buffer.
    pub fn values(&self) -> &Tensor {
        &self.values
    }
    /// AdamW's moments, once a step has made them.
    pub fn moments(&self) -> Option<&(Tensor, Tensor)> {
        self.moments.as_ref()
    }

    fn named(&self, name: &str) -> Result<&ParamEntry> {
        self.entry(name)
            .ok_or_else(|| anyhow::anyhow!("no parameter named {name} in this model"))
    }
    /// The value view of parameter `name`.
    pub fn value(&self, name: &str) -> Result<Tensor> {
        let e = self.named(name)?;
        self.values.view(e.offset, &e.shape)
    }
    /// The gradient view of parameter `name` (committed contributions added).
    pub fn grad(&self, name: &str) -> Result<Tensor> {
        self.grads.settle()?;
        let e = self.named(name)?;
        self.grads.flat.view(e.offset, &e.shape)
    }

    /// Zeroes every gradient: one memset over the flat buffer.
    pub fn zero_grad(&mut self) -> Result<()> {
        self.grads.discard_pending()?;
        let mut g = self.grads.flat.clone();
        self.device.run().fill_zero(&mut g)
    }

    /// Trains (or freezes) every parameter whose name starts with `prefix` ("" for all);
    /// returns how many parameters matched. A frozen parameter keeps its value: the optimizer
    /// skips its range and the gradient norm leaves it out.
    pub fn set_trainable(&mut self, prefix: &str, trainable: bool) -> usize {
        self.update_prefix(prefix, |e| e.trainable = trainable)
    }

    /// Sets the learning-rate multiplier of every parameter whose name starts with `prefix`.
    pub fn set_lr_scale(&mut self, prefix: &str, scale: f32) -> usize {
        self.update_prefix(prefix, |e| e.lr_scale = scale)
    }

    /// Calls `f` on every entry whose name starts with `prefix` and drops the chunk table
    /// (it depends on the entries' settings); returns how many matched.
    fn update_prefix(&mut self, prefix: &str, mut f: impl FnMut(&mut ParamEntry)) -> usize {
        let mut n = 0;
        for e in self
            .entries
            .iter_mut()
            .filter(|e| e.name.starts_with(prefix))
        {
            f(e);
            n += 1;
        }
        self.chunks = None;
        n
    }

    /// Keeps a compute copy of every value in `dtype` (bf16: mixed precision) or none (f32),
    /// refreshed by each optimizer step; layers read it when their input has that dtype.
    pub fn set_compute_dtype(&mut self, model: &mut dyn Parameters, dtype: DType) -> Result<()> {
        self.compute = match dtype {
            DType::F32 => None,
            DType::BF16 => Some(ops::cast(&self.values, DType::BF16)?),
            DType::I32 => bail!("parameters compute in f32 or bf16, not i32"),
        };
        self.repoint(model)
    }

    /// Re-derives the compute copy after the values changed outside the optimizer (one cast
    /// launch).
    pub fn refresh_compute(&mut self) -> Result<()> {
        if let Some(c) = &mut self.compute {
            self.device.run().cast(c, &self.values)?;
        }
        Ok(())
    }

    /// The optimizer's chunk table over the trainable ranges (built on first use).
    pub fn chunks(&mut self) -> Result<&ChunkTable> {
        if self.chunks.is_none() {
            let ranges: Vec<(usize, usize, f32, bool)> = self
                .entries
                .iter()
                .filter(|e| e.trainable)
                .map(|e| (e.offset, e.numel(), e.lr_scale, e.decay))
                .collect();
            self.chunks = Some(ChunkTable::new(&ranges, &self.device)?);
        }
        Ok(self.chunks.as_ref().expect("built above"))
    }

    /// The buffers an optimizer step updates: (values, gradients, first and second moments,
    /// compute copy, chunk table). The moments are made (zeroed) on the first call.
    pub fn optimizer_view(
        &mut self,
    ) -> Result<(Tensor, Tensor, Tensor, Tensor, Option<Tensor>, ChunkTable)> {
        if self.moments.is_none() {
            let n = self.values.numel();
            let b = self.device.backend();
            self.moments = Some((b.zeros(&[n], DType::F32)?, b.zeros(&[n], DType::F32)?));
        }
        self.grads.settle()?;
        let chunks = self.chunks()?.clone();
        let (m, v) = self.moments.clone().expect("made above");
        Ok((
            self.values.clone(),
            self.grads.flat.clone(),
            m,
            v,
            self.compute.clone(),
            chunks,
        ))
    }

    /// Replaces the moments (a resumed checkpoint's).
    pub fn set_moments(&mut self, m: Tensor, v: Tensor) -> Result<()> {
        let n = self.values.numel();
        if m.numel() != n || v.numel() != n {
            bail!(
                "optimizer moments of {} and {} elements do not fit a store of {n}",
                m.numel(),
                v.numel()
            );
        }
        self.moments = Some((
            m.to_device(&self.device)?.reshape(&[n])?,
            v.to_device(&self.device)?.reshape(&[n])?,
        ));
        Ok(())
    }

    /// For each trainable parameter, Σ g² (the slow path that names a non-finite gradient).
    pub fn per_param_grad_sq(&self) -> Result<Vec<(String, f32)>> {
        self.grads.settle()?;
        let mut out = Vec::new();
        for e in self.entries.iter().filter(|e| e.trainable) {
            let g = self.grads.flat.view(e.offset, &e.shape)?;
            out.push((e.name.clone(), ops::item(&ops::sum_squares(&g)?)?));
        }
        Ok(out)
    }
}
