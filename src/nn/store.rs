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
/// pass computes in fp32, or a zeroed scratch buffer in the compute dtype (bf16) that
/// [`Grads::commit`] widens and adds, as PyTorch's autocast does.
pub struct GradSlot {
    pub buf: Tensor,
    target: Option<Tensor>,
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
    /// The gradient view of `p` (fp32, p's shape).
    pub fn of(&mut self, p: &Param) -> Result<Tensor> {
        self.view(p)
    }

    fn view(&mut self, p: &Param) -> Result<Tensor> {
        if !p.value.shares_storage(&self.values) {
            bail!(
                "a parameter of shape {:?} is not part of this parameter store (pack the whole model with ParamStore::pack before its backward pass)",
                p.value.shape
            );
        }
        let at = p.value.offset();
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
                target: None,
            });
        }
        let dev = view.device();
        let buf = dev.backend().zeros(&view.shape, dtype)?;
        Ok(GradSlot {
            buf,
            target: Some(view),
        })
    }

    /// Adds a scratch slot into its gradient (nothing to do for an fp32 slot).
    pub fn commit(&mut self, s: GradSlot) -> Result<()> {
        match s.target {
            None => Ok(()),
            Some(mut target) => {
                let wide = ops::cast(&s.buf, DType::F32)?;
                ops::add_assign(&mut target, &wide)
            }
        }
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

    /// The whole flat buffer (with the alignment gaps, which stay zero).
    pub fn flat(&self) -> &Tensor {
        &self.flat
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
    /// The gradient view of parameter `name`.
    pub fn grad(&self, name: &str) -> Result<Tensor> {
        let e = self.named(name)?;
        self.grads.flat.view(e.offset, &e.shape)
    }

    /// Zeroes every gradient: one memset over the flat buffer.
    pub fn zero_grad(&mut self) -> Result<()> {
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
        let mut out = Vec::new();
        for e in self.entries.iter().filter(|e| e.trainable) {
            let g = self.grads.flat.view(e.offset, &e.shape)?;
            out.push((e.name.clone(), ops::item(&ops::sum_squares(&g)?)?));
        }
        Ok(out)
    }
}
