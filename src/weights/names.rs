//! Which model a set of tensor names and shapes holds.
//!
//! Detection is generic: it finds the tensor that identifies a family (`patch_embed.proj.weight`
//! for the SFM ViT, `feature_projection.projection.weight` for SeisLM's wav2vec2), takes the name
//! prefix before it (e.g. `model.wav2vec2.` or a fixture's `param.`), counts the numbered blocks
//! (`blocks.N.`, `decoder_blocks.N.`, `encoder.layers.N.`) and reads the widths from the shapes.
//! A named preset is reported when the numbers are those of a published one.

use super::TensorInfo;
use std::collections::BTreeSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// timm/MAE ViT encoder (SFM).
    SfmVit,
    /// The ViT encoder with an MAE decoder (SFM pretraining checkpoints).
    SfmMae,
    /// wav2vec2 (SeisLM), HF names.
    Seislm,
    Unknown,
}

/// What [`detect`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    pub family: Family,
    /// A published preset ("sfm-base", "sfm-large", "seislm-base", "seislm-large") or
    /// "custom" when the numbers match none of them.
    pub preset: String,
    /// The name prefix before the model's own names ("" for none).
    pub prefix: String,
    /// Embedding (SFM) or hidden (SeisLM) width.
    pub dim: usize,
    /// Transformer blocks in the encoder.
    pub depth: usize,
    /// MLP / feed-forward inner width of block 0, when present.
    pub mlp_dim: Option<usize>,
    /// SFM: patch size and input channels from `patch_embed.proj.weight` [dim, in, p, p].
    pub patch: Option<usize>,
    pub in_chans: Option<usize>,
    /// SFM: tokens in `pos_embed` (including cls) and the square image side they imply.
    pub pos_tokens: Option<usize>,
    pub img_size: Option<usize>,
    /// MAE decoder width and depth, when present.
    pub decoder_dim: Option<usize>,
    pub decoder_depth: Option<usize>,
    /// SeisLM: conv feature-extractor layers and channels; positional-conv kernel.
    pub conv_layers: Option<usize>,
    pub conv_dim: Option<usize>,
    pub pos_conv_kernel: Option<usize>,
    /// SeisLM: the pretraining quantizer is present.
    pub has_quantizer: bool,
}

impl Detection {
    fn unknown() -> Self {
        Detection {
            family: Family::Unknown,
            preset: "unknown".into(),
            prefix: String::new(),
            dim: 0,
            depth: 0,
            mlp_dim: None,
            patch: None,
            in_chans: None,
            pos_tokens: None,
            img_size: None,
            decoder_dim: None,
            decoder_depth: None,
            conv_layers: None,
            conv_dim: None,
            pos_conv_kernel: None,
            has_quantizer: false,
        }
    }

    /// One line for people, e.g. "sfm-base (ViT: dim 768, depth 12, patch 16, 1 channel, ...)".
    pub fn summary(&self) -> String {
        let pre = if self.prefix.is_empty() {
            String::new()
        } else {
            format!(", names prefixed \"{}\"", self.prefix)
        };
        match self.family {
            Family::Unknown => {
                "no known model (neither SFM/MAE ViT nor SeisLM wav2vec2 names)".into()
            }
            Family::SfmVit | Family::SfmMae => {
                let mut s = format!(
                    "{} (SFM ViT{}: dim {}, depth {}",
                    self.preset,
                    if self.family == Family::SfmMae {
                        " + MAE decoder"
                    } else {
                        ""
                    },
                    self.dim,
                    self.depth
                );
                if let Some(m) = self.mlp_dim {
                    s += &format!(", mlp {m}");
                }
                if let (Some(p), Some(c)) = (self.patch, self.in_chans) {
                    s += &format!(
                        ", patch {p}, {c} input channel{}",
                        if c == 1 { "" } else { "s" }
                    );
                }
                if let Some(i) = self.img_size {
                    s += &format!(", image {i}x{i}");
                }
                if let (Some(d), Some(n)) = (self.decoder_dim, self.decoder_depth) {
                    s += &format!(", decoder dim {d} depth {n}");
                }
                s + &pre + ")"
            }
            Family::Seislm => {
                let mut s = format!(
                    "{} (SeisLM wav2vec2: hidden {}, layers {}",
                    self.preset, self.dim, self.depth
                );
                if let Some(m) = self.mlp_dim {
                    s += &format!(", ffn {m}");
                }
                if let (Some(n), Some(c)) = (self.conv_layers, self.conv_dim) {
                    s += &format!(", {n} conv layers of {c} channels");
                }
                if let Some(k) = self.pos_conv_kernel {
                    s += &format!(", pos conv kernel {k}");
                }
                if self.has_quantizer {
                    s += ", with quantizer";
                }
                s + &pre + ")"
            }
        }
    }
}

/// Name prefixes of the MAE decoder in SFM pretraining checkpoints: pass them as
/// `LoadOptions::ignore` to load such a checkpoint into the ViT encoder alone.
pub const MAE_DECODER_PREFIXES: &[&str] = &[
    "mask_token",
    "decoder_embed.",
    "decoder_pos_embed",
    "decoder_blocks.",
    "decoder_norm.",
    "decoder_pred.",
];

/// Tensors of SFM-Finetune's segmentation model that its forward pass never uses: timm's
/// classifier `head.{weight,bias}` [classes, C] and a `segmentation_head.0` conv3×3 16→classes
/// built in `__init__` but not called.
pub const SFM_FINETUNE_SEGMENTATION_UNUSED: &[&str] = &["head.", "segmentation_head."];
/// Tensors of SFM-Finetune's regression model that its forward pass never uses: timm's
/// classifier `head.{weight,bias}` [1, C].
pub const SFM_FINETUNE_REGRESSION_UNUSED: &[&str] = &["head."];

/// Options to load a converted SFM-Finetune checkpoint (encoder + head, names unchanged) into
/// the encoder and a head visited with the prefix "": skips `unused` (one of
/// [`SFM_FINETUNE_SEGMENTATION_UNUSED`], [`SFM_FINETUNE_REGRESSION_UNUSED`]) and the BatchNorms' `num_batches_tracked`.
pub fn sfm_finetune_load_options(strict: bool, unused: &[&str]) -> super::LoadOptions {
    super::LoadOptions {
        strict,
        strip_prefix: None,
        ignore: unused.iter().map(|s| s.to_string()).collect(),
        ignore_suffixes: vec![".num_batches_tracked".to_string()],
    }
}

/// Published presets: (name, family, dim, depth).
const PRESETS: &[(&str, Family, usize, usize)] = &[
    ("sfm-base", Family::SfmVit, 768, 12),
    ("sfm-large", Family::SfmVit, 1024, 24),
    ("seislm-base", Family::Seislm, 240, 6),
    ("seislm-large", Family::Seislm, 768, 12),
];

/// The preset whose family, width and depth these are, or "custom".
pub fn preset_name(family: Family, dim: usize, depth: usize) -> String {
    let fam = if family == Family::SfmMae {
        Family::SfmVit
    } else {
        family
    };
    PRESETS
        .iter()
        .find(|(_, f, d, n)| *f == fam && *d == dim && *n == depth)
        .map(|(name, ..)| name.to_string())
        .unwrap_or_else(|| "custom".into())
}

/// Number of distinct `N` in names `<prefix><stem>N.` ("blocks." counts `blocks.0.`, `blocks.1.`).
pub fn count_numbered(infos: &[TensorInfo], prefix: &str, stem: &str) -> usize {
    let head = format!("{prefix}{stem}");
    let mut seen = BTreeSet::new();
    for i in infos {
        if let Some(rest) = i.name.strip_prefix(&head) {
            if let Some((num, _)) = rest.split_once('.') {
                if let Ok(n) = num.parse::<usize>() {
                    seen.insert(n);
                }
            }
        }
    }
    seen.len()
}

fn find<'a>(infos: &'a [TensorInfo], name: &str) -> Option<&'a TensorInfo> {
    infos.iter().find(|i| i.name == name)
}

/// The name prefix before `suffix` (at a dot boundary). When several prefixes hold it (a
/// fixture has `param.` and `grad.`), one that is not `grad.` wins, then the one with the most
/// tensors, then the shortest.
fn prefix_of(infos: &[TensorInfo], suffix: &str) -> Option<String> {
    infos
        .iter()
        .filter_map(|i| {
            let p = i.name.strip_suffix(suffix)?;
            (p.is_empty() || p.ends_with('.')).then(|| p.to_string())
        })
        .min_by_key(|p| {
            let count = infos
                .iter()
                .filter(|i| i.name.starts_with(p.as_str()))
                .count();
            (p.starts_with("grad."), std::cmp::Reverse(count), p.len())
        })
}

/// Recognises the model in a list of tensors (names and shapes).
pub fn detect(infos: &[TensorInfo]) -> Detection {
    if let Some(prefix) = prefix_of(infos, "patch_embed.proj.weight") {
        return detect_vit(infos, &prefix);
    }
    if let Some(prefix) = prefix_of(infos, "feature_projection.projection.weight") {
        return detect_wav2vec2(infos, &prefix);
    }
    Detection::unknown()
}

fn detect_vit(infos: &[TensorInfo], prefix: &str) -> Detection {
    let mut d = Detection::unknown();
    d.prefix = prefix.to_string();
    let pe = find(infos, &format!("{prefix}patch_embed.proj.weight")).expect("found by prefix_of");
    if pe.shape.len() == 4 {
        d.dim = pe.shape[0];
        d.in_chans = Some(pe.shape[1]);
        d.patch = Some(pe.shape[2]);
    } else if let Some(&first) = pe.shape.first() {
        d.dim = first;
    }
    d.depth = count_numbered(infos, prefix, "blocks.");
    d.mlp_dim = find(infos, &format!("{prefix}blocks.0.mlp.fc1.weight"))
        .and_then(|i| i.shape.first().copied());
    if let Some(pos) = find(infos, &format!("{prefix}pos_embed")) {
        if pos.shape.len() == 3 {
            let tokens = pos.shape[1];
            d.pos_tokens = Some(tokens);
            // With a cls token: tokens = 1 + grid²; without: grid².
            let has_cls = find(infos, &format!("{prefix}cls_token")).is_some();
            let grid_n = if has_cls {
                tokens.saturating_sub(1)
            } else {
                tokens
            };
            let g = (grid_n as f64).sqrt().round() as usize;
            if g.checked_mul(g) == Some(grid_n) {
                d.img_size = d.patch.and_then(|p| p.checked_mul(g));
            }
        }
    }
    let dec_depth = count_numbered(infos, prefix, "decoder_blocks.");
    if dec_depth > 0 || find(infos, &format!("{prefix}mask_token")).is_some() {
        d.family = Family::SfmMae;
        d.decoder_depth = Some(dec_depth);
        d.decoder_dim = find(infos, &format!("{prefix}decoder_embed.weight"))
            .and_then(|i| i.shape.first().copied());
    } else {
        d.family = Family::SfmVit;
    }
    d.preset = preset_name(d.family, d.dim, d.depth);
    d
}

fn detect_wav2vec2(infos: &[TensorInfo], prefix: &str) -> Detection {
    let mut d = Detection::unknown();
    d.family = Family::Seislm;
    d.prefix = prefix.to_string();
    let proj = find(
        infos,
        &format!("{prefix}feature_projection.projection.weight"),
    )
    .expect("found by prefix_of");
    d.dim = proj.shape.first().copied().unwrap_or(0);
    d.depth = count_numbered(infos, prefix, "encoder.layers.");
    d.mlp_dim = find(
        infos,
        &format!("{prefix}encoder.layers.0.feed_forward.intermediate_dense.weight"),
    )
    .and_then(|i| i.shape.first().copied());
    let conv = count_numbered(infos, prefix, "feature_extractor.conv_layers.");
    if conv > 0 {
        d.conv_layers = Some(conv);
        d.conv_dim = find(
            infos,
            &format!("{prefix}feature_extractor.conv_layers.0.conv.weight"),
        )
        .and_then(|i| i.shape.first().copied());
    }
    let pos = ["weight_v", "parametrizations.weight.original1", "weight"]
        .iter()
        .find_map(|s| find(infos, &format!("{prefix}encoder.pos_conv_embed.conv.{s}")));
    d.pos_conv_kernel = pos.and_then(|i| i.shape.get(2).copied());
    // The quantizer sits beside wav2vec2 in Lightning checkpoints (model.quantizer.*), so look
    // for it anywhere.
    d.has_quantizer = infos
        .iter()
        .any(|i| i.name.ends_with("quantizer.codevectors"));
    d.preset = preset_name(d.family, d.dim, d.depth);
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::Dtype;

    fn ti(name: &str, shape: &[usize]) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            dtype: Dtype::F32,
            shape: shape.to_vec(),
        }
    }

    fn vit(dim: usize, depth: usize, prefix: &str) -> Vec<TensorInfo> {
        let mut v = vec![
            ti(&format!("{prefix}cls_token"), &[1, 1, dim]),
            ti(&format!("{prefix}pos_embed"), &[1, 197, dim]),
            ti(
                &format!("{prefix}patch_embed.proj.weight"),
                &[dim, 1, 16, 16],
            ),
            ti(&format!("{prefix}patch_embed.proj.bias"), &[dim]),
        ];
        for b in 0..depth {
            v.push(ti(
                &format!("{prefix}blocks.{b}.attn.qkv.weight"),
                &[3 * dim, dim],
            ));
            v.push(ti(
                &format!("{prefix}blocks.{b}.mlp.fc1.weight"),
                &[4 * dim, dim],
            ));
        }
        v
    }

    #[test]
    fn sfm_presets() {
        let d = detect(&vit(768, 12, ""));
        assert_eq!(d.family, Family::SfmVit);
        assert_eq!(d.preset, "sfm-base");
        assert_eq!(
            (d.patch, d.in_chans, d.img_size),
            (Some(16), Some(1), Some(224))
        );
        assert_eq!(d.mlp_dim, Some(3072));
        assert_eq!(detect(&vit(1024, 24, "")).preset, "sfm-large");
        let t = detect(&vit(36, 2, "param."));
        assert_eq!((t.preset.as_str(), t.dim, t.depth), ("custom", 36, 2));
        assert_eq!(t.prefix, "param.");
    }

    #[test]
    fn mae_decoder() {
        let mut v = vit(768, 12, "");
        v.push(ti("mask_token", &[1, 1, 256]));
        v.push(ti("decoder_embed.weight", &[256, 768]));
        for b in 0..4 {
            v.push(ti(&format!("decoder_blocks.{b}.norm1.weight"), &[256]));
        }
        let d = detect(&v);
        assert_eq!(d.family, Family::SfmMae);
        assert_eq!(d.preset, "sfm-base");
        assert_eq!((d.decoder_dim, d.decoder_depth), (Some(256), Some(4)));
        assert!(d.summary().contains("decoder dim 256 depth 4"));
    }

    #[test]
    fn seislm_presets() {
        let p = "model.wav2vec2.";
        let mut v = vec![
            ti(
                &format!("{p}feature_projection.projection.weight"),
                &[240, 256],
            ),
            ti(
                &format!("{p}feature_extractor.conv_layers.0.conv.weight"),
                &[256, 3, 3],
            ),
            ti(
                &format!("{p}feature_extractor.conv_layers.1.conv.weight"),
                &[256, 256, 3],
            ),
            ti(
                &format!("{p}encoder.pos_conv_embed.conv.weight_v"),
                &[240, 15, 128],
            ),
            ti("model.quantizer.codevectors", &[1, 640, 128]),
        ];
        for l in 0..6 {
            v.push(ti(
                &format!("{p}encoder.layers.{l}.feed_forward.intermediate_dense.weight"),
                &[3072, 240],
            ));
        }
        let d = detect(&v);
        assert_eq!(d.family, Family::Seislm);
        assert_eq!(d.preset, "seislm-base");
        assert_eq!(d.prefix, p);
        assert_eq!((d.conv_layers, d.conv_dim), (Some(2), Some(256)));
        assert_eq!(d.pos_conv_kernel, Some(128));
        assert!(d.has_quantizer);
        assert_eq!(preset_name(Family::Seislm, 768, 12), "seislm-large");
    }

    /// Hostile files: scalars and short shapes where detection reads dimensions (this panicked
    /// with "index out of bounds" before).
    #[test]
    fn scalars_and_short_shapes_do_not_panic() {
        let d = detect(&[
            ti("patch_embed.proj.weight", &[4, 1, 16, 16]),
            ti("blocks.0.mlp.fc1.weight", &[]),
            ti("pos_embed", &[1, usize::MAX, 4]),
            ti("cls_token", &[]),
            ti("mask_token", &[]),
            ti("decoder_embed.weight", &[]),
        ]);
        assert_eq!(
            (d.family, d.mlp_dim, d.decoder_dim),
            (Family::SfmMae, None, None)
        );
        let d = detect(&[ti("patch_embed.proj.weight", &[]), ti("pos_embed", &[])]);
        assert_eq!(d.dim, 0);
        let d = detect(&[
            ti("feature_projection.projection.weight", &[]),
            ti(
                "encoder.layers.0.feed_forward.intermediate_dense.weight",
                &[],
            ),
            ti("feature_extractor.conv_layers.0.conv.weight", &[]),
            ti("encoder.pos_conv_embed.conv.weight_v", &[3]),
        ]);
        assert_eq!(
            (d.family, d.dim, d.mlp_dim, d.conv_dim),
            (Family::Seislm, 0, None, None)
        );
        assert!(!d.summary().is_empty());
    }

    #[test]
    fn unknown_names() {
        assert_eq!(detect(&[ti("foo.weight", &[3])]).family, Family::Unknown);
    }
}
