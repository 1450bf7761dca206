//! Models: the SFM image encoder and MAE, SeisLM, their heads, and the fusion models.

pub mod fusion;
pub mod mae;
pub mod pos_embed;
pub mod seislm;
pub mod seislm_heads;
pub mod seislm_pretrain;
pub mod sfm;
pub mod sfm_heads;
pub mod wav2vec2_objective;

use crate::backend::Device;
use crate::tensor::Tensor;
use anyhow::Result;
use std::sync::Mutex;

/// Index tensors (and other constants) that depend only on sizes (a batch size, a patch
/// count), made and uploaded once per (name, sizes, device) and shared afterwards, so that a
/// training step does not upload them again. Holds the last [`IndexCache::KEEP`] entries.
#[derive(Default)]
pub struct IndexCache(Mutex<Vec<IndexEntry>>);

/// (name, sizes, device, the tensor there).
type IndexEntry = (&'static str, Vec<usize>, Device, Tensor);

impl IndexCache {
    pub const KEEP: usize = 8;

    /// The tensor `name` for sizes `key` on `device`, made by `make` (on the host) the first
    /// time.
    pub fn get(
        &self,
        name: &'static str,
        key: &[usize],
        device: &Device,
        make: impl FnOnce() -> Result<Tensor>,
    ) -> Result<Tensor> {
        let mut c = self
            .0
            .lock()
            .map_err(|_| anyhow::anyhow!("index cache poisoned"))?;
        if let Some((.., t)) = c
            .iter()
            .find(|(n, k, d, _)| *n == name && k == key && d == device)
        {
            return Ok(t.clone());
        }
        let t = make()?.to_device(device)?;
        if c.len() >= Self::KEEP {
            c.remove(0);
        }
        c.push((name, key.to_vec(), device.clone(), t.clone()));
        Ok(t)
    }
}

impl std::fmt::Debug for IndexCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map(|c| c.len()).unwrap_or(0);
        write!(f, "IndexCache({n} entries)")
    }
}
