#!/usr/bin/env python3
"""Parity fixtures for seisfuse: tiny SFM-like ViT, MAE and SeisLM-like wav2vec2 from PyTorch.

Each fixture is one safetensors file (float32) under tests/fixtures/ holding the model's
parameters, its inputs, its outputs, a scalar loss and the gradients of that loss:

  vit_tiny.safetensors
      timm VisionTransformer: image 40x40, 1 channel, patch 8 (25 patches), dim 36, depth 2,
      3 heads, mlp ratio 4, qkv_bias, LayerNorm eps 1e-6, cls token, fixed 2-D sin-cos position
      embedding (MAE's get_2d_sincos_pos_embed; not trained), GELU (erf), no dropout.
      param.<timm name>      every parameter, pos_embed included
      input.raw_images       [2,1,40,40] before normalisation
      input.images           [2,1,40,40] per image (x - mean) / (std + 1e-6), population std
      input.upstream         [2,26,36] fixed random weights of the loss
      output.tokens          [2,26,36] final normed tokens (forward_features)
      output.loss            [1] sum(output.tokens * input.upstream)
      grad.<timm name>       d loss / d parameter for every trainable parameter
      grad.input.images      d loss / d input.images

  mae_tiny.safetensors, mae_tiny_normpix.safetensors
      MAE (models_mae.py MaskedAutoencoderViT structure) on the same encoder; decoder dim 20,
      depth 1, 2 heads, fixed sin-cos decoder position embedding, mask token,
      decoder_pred Linear(20 -> 8*8*1); mask ratio 0.75 with the noise given as an input
      (ids_shuffle = argsort(noise), keep the first int(25 * 0.25) = 6);
      loss = mean over the pixels of each patch of (pred - target)^2, summed over masked patches,
      divided by the number of masked patches. norm_pix_loss is False in mae_tiny and True in
      mae_tiny_normpix (target normalised per patch by its mean and unbiased variance + 1e-6).
      param.*, input.raw_images, input.images, input.noise [2,25], output.pred [2,25,64],
      output.mask [2,25] (1 = masked), output.ids_restore [2,25] (as float),
      output.latent [2,7,36] (encoder output with cls), output.loss [1], grad.* (trainable).

  wav2vec2_tiny.safetensors (needs `transformers`; skipped with a message when it is missing)
      HF Wav2Vec2Model: conv_dim (16,16), kernel (3,3), stride (2,2), feat_extract_norm "layer",
      conv_bias, hidden 24, 2 layers, 4 heads, intermediate 48, pos conv kernel 8 in 4 groups
      (weight norm over dim 2), do_stable_layer_norm, eps 1e-5, no dropout, no masking; first
      conv takes 3 input channels. Input [2,3,101] -> 50 -> 24 frames.
      param.<HF name> (weight norm as weight_g / weight_v; masked_spec_embed left out: unused
      without masking), input.waveforms, input.upstream, output.last_hidden_state [2,24,24],
      output.extract_features [2,24,16], output.loss [1] = sum(last_hidden_state * upstream),
      grad.<HF name>, grad.input.waveforms.

Parameters are drawn from a fixed seed, scaled so that activations are O(1), with LayerNorm
weights and biases randomised too. Parameters and inputs are rounded to float32 first; the
forward and backward passes then run in float64 on the CPU and the results are stored as float32,
so the fixtures are float32-rounded exact values, not float32 computations.
The torch, timm (and transformers) versions, the seed and the configuration are written into each
file's metadata.

Regenerate (CPU is enough; the PyPI torch wheel runs on CPU):

    python -m venv /tmp/fx && /tmp/fx/bin/pip install "torch==2.11.*" timm transformers safetensors
    /tmp/fx/bin/python tools/make_fixtures.py            # writes tests/fixtures/*.safetensors

(Do not install torchaudio next to a newer torch: transformers imports it and fails.)
The committed fixtures were made with the versions printed by the script and stored in metadata
(torch 2.11.0, timm 1.0.31 at the time of writing).
"""

import argparse
import json
import os
import sys
from functools import partial

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import save_file

SEED = 20261126
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")


# ---------------------------------------------------------------------------------------------
# MAE's fixed 2-D sin-cos position embedding (equations of MAE's util/pos_embed.py).
# ---------------------------------------------------------------------------------------------


def get_1d_sincos_pos_embed_from_grid(embed_dim, pos):
    """pos: positions (M,); returns (M, embed_dim): [sin(pos*omega), cos(pos*omega)]."""
    assert embed_dim % 2 == 0
    omega = np.arange(embed_dim // 2, dtype=np.float64)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000**omega
    out = np.einsum("m,d->md", pos.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def get_2d_sincos_pos_embed(embed_dim, grid_size, cls_token=False):
    """(grid_size*grid_size [+1], embed_dim). As in MAE the grid is built with
    meshgrid(grid_w, grid_h), so grid[0] holds the column index and grid[1] the row index:
    the first embed_dim/2 channels encode the column, the second half the row. The cls row is
    all zeros."""
    grid_h = np.arange(grid_size, dtype=np.float64)
    grid_w = np.arange(grid_size, dtype=np.float64)
    grid = np.meshgrid(grid_w, grid_h)  # w goes first
    grid = np.stack(grid, axis=0).reshape(2, 1, grid_size, grid_size)
    assert embed_dim % 2 == 0
    emb_h = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[0])
    emb_w = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[1])
    pos = np.concatenate([emb_h, emb_w], axis=1)
    if cls_token:
        pos = np.concatenate([np.zeros([1, embed_dim]), pos], axis=0)
    return pos


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def f32_round(t):
    """Round a tensor to float32 values (kept in the tensor's dtype)."""
    return t.detach().float().to(t.dtype)


def randomise(module, gen, skip=()):
    """Fixed-seed random parameters, O(1) activations, LayerNorms randomised too."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name in skip:
                continue
            leaf = name.rsplit(".", 1)[-1]
            owner = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
            shape = p.shape
            r = torch.randn(shape, generator=gen, dtype=torch.float64)
            if isinstance(owner, nn.LayerNorm):
                v = 1.0 + 0.2 * r if leaf == "weight" else 0.1 * r
            elif leaf == "bias":
                v = 0.1 * r
            elif p.dim() >= 2:
                fan_in = int(np.prod(shape[1:]))
                v = r / np.sqrt(fan_in)
            else:
                v = 0.5 * r
            p.copy_(v.to(p.dtype))
            p.copy_(f32_round(p))


def sfm_normalise(x):
    """SFM's per-image normalisation (x - mean) / (std + 1e-6), population std."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True, unbiased=False)
    return (x - mean) / (std + 1e-6)


def seismic_like_images(gen, n, size):
    """Smooth dipping layers plus noise: a little like a seismic section, not white noise."""
    rows = torch.arange(size, dtype=torch.float64).view(size, 1)
    cols = torch.arange(size, dtype=torch.float64).view(1, size)
    imgs = []
    for _ in range(n):
        a = torch.rand(4, generator=gen, dtype=torch.float64)
        img = (
            torch.sin((rows + 0.3 * (a[0] - 0.5) * cols) * (0.4 + 0.6 * a[1]))
            * (1.0 + 0.5 * torch.cos(cols * 0.15 * a[2]))
            + 0.3 * torch.randn(size, size, generator=gen, dtype=torch.float64)
            + 3.0 * a[3]
        )
        imgs.append(img)
    return torch.stack(imgs).unsqueeze(1)


def versions():
    v = {"torch": torch.__version__, "numpy": np.__version__, "python": sys.version.split()[0]}
    try:
        import timm

        v["timm"] = timm.__version__
    except ImportError:
        pass
    try:
        import transformers

        v["transformers"] = transformers.__version__
    except ImportError:
        pass
    return v


def canonical_header(path):
    """Rewrite the safetensors header with sorted keys, so that regenerating a fixture gives
    the same bytes (the writer's metadata order is not fixed). Offsets are relative to the end
    of the header, so only the header changes."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + raw[8 + n :])


def write(path, tensors, meta, overwrite):
    if os.path.exists(path) and not overwrite:
        raise SystemExit(f"{path} exists; pass --overwrite to replace it")
    out = {k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()}
    md = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in meta.items()}
    md.update({k: str(v) for k, v in versions().items()})
    md["compute_dtype"] = "float64 (parameters and inputs rounded to float32 first)"
    md["producer"] = "tools/make_fixtures.py"
    md["seed"] = str(SEED)
    tmp = path + ".tmp"
    save_file(out, tmp, metadata=md)
    canonical_header(tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    size = os.path.getsize(path)
    print(f"wrote {path}: {len(out)} tensors, {size} bytes")


# ---------------------------------------------------------------------------------------------
# Tiny SFM ViT (timm) and MAE
# ---------------------------------------------------------------------------------------------

IMG, PATCH, DIM, DEPTH, HEADS, MLP = 40, 8, 36, 2, 3, 4.0
GRID = IMG // PATCH
NUM_PATCHES = GRID * GRID
DEC_DIM, DEC_DEPTH, DEC_HEADS = 20, 1, 2
MASK_RATIO = 0.75
LN = partial(nn.LayerNorm, eps=1e-6)

VIT_CONFIG = {
    "img_size": IMG,
    "patch_size": PATCH,
    "in_chans": 1,
    "embed_dim": DIM,
    "depth": DEPTH,
    "num_heads": HEADS,
    "mlp_ratio": MLP,
    "qkv_bias": True,
    "layer_norm_eps": 1e-6,
    "pos_embed": "fixed 2-D sin-cos (MAE), cls row zeros",
    "act": "GELU (erf)",
    "normalisation": "(x - mean) / (std + 1e-6), population std, per image",
}


def fixed_pos_embed(dim, grid):
    pe = get_2d_sincos_pos_embed(dim, grid, cls_token=True)
    return torch.from_numpy(pe).to(torch.float32).to(torch.float64).unsqueeze(0)


def make_vit():
    import timm.layers
    from timm.models.vision_transformer import VisionTransformer

    timm.layers.set_fused_attn(False)  # the plain softmax(q k^T * scale) v path
    model = VisionTransformer(
        img_size=IMG,
        patch_size=PATCH,
        in_chans=1,
        num_classes=0,
        global_pool="token",
        embed_dim=DIM,
        depth=DEPTH,
        num_heads=HEADS,
        mlp_ratio=MLP,
        qkv_bias=True,
        class_token=True,
        norm_layer=LN,
        act_layer=nn.GELU,
        drop_rate=0.0,
        pos_drop_rate=0.0,
        proj_drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.0,
    )
    return model


def vit_fixture(overwrite):
    gen = torch.Generator().manual_seed(SEED)
    model = make_vit().double().eval()
    randomise(model, gen, skip=("pos_embed",))
    with torch.no_grad():
        model.pos_embed.copy_(fixed_pos_embed(DIM, GRID))
    model.pos_embed.requires_grad_(False)

    raw = f32_round(seismic_like_images(gen, 2, IMG))
    images = f32_round(sfm_normalise(raw)).requires_grad_(True)
    tokens = model.forward_features(images)
    assert tokens.shape == (2, NUM_PATCHES + 1, DIM), tokens.shape
    upstream = f32_round(torch.randn(tokens.shape, generator=gen, dtype=torch.float64))
    loss = (tokens * upstream).sum()
    loss.backward()

    t = {}
    for n, p in model.named_parameters():
        t[f"param.{n}"] = p
    t["input.raw_images"] = raw
    t["input.images"] = images
    t["input.upstream"] = upstream
    t["output.tokens"] = tokens
    t["output.loss"] = loss.reshape(1)
    for n, p in model.named_parameters():
        if p.requires_grad:
            t[f"grad.{n}"] = p.grad
    t["grad.input.images"] = images.grad
    print(f"vit_tiny: loss {loss.item():.6f}, tokens std {tokens.std().item():.3f}")
    write(
        os.path.join(FIXTURES, "vit_tiny.safetensors"),
        t,
        {"model": "timm VisionTransformer (SFM-like tiny)", "config": VIT_CONFIG},
        overwrite,
    )


class TinyMAE(nn.Module):
    """The structure of MAE's MaskedAutoencoderViT, written with timm Blocks."""

    def __init__(self, norm_pix_loss):
        super().__init__()
        import timm.layers
        from timm.layers import PatchEmbed
        from timm.models.vision_transformer import Block

        timm.layers.set_fused_attn(False)
        self.norm_pix_loss = norm_pix_loss
        self.patch_embed = PatchEmbed(IMG, PATCH, 1, DIM)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.pos_embed = nn.Parameter(torch.zeros(1, NUM_PATCHES + 1, DIM), requires_grad=False)
        self.blocks = nn.ModuleList(
            [Block(DIM, HEADS, MLP, qkv_bias=True, norm_layer=LN) for _ in range(DEPTH)]
        )
        self.norm = LN(DIM)
        self.decoder_embed = nn.Linear(DIM, DEC_DIM, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, DEC_DIM))
        self.decoder_pos_embed = nn.Parameter(
            torch.zeros(1, NUM_PATCHES + 1, DEC_DIM), requires_grad=False
        )
        self.decoder_blocks = nn.ModuleList(
            [Block(DEC_DIM, DEC_HEADS, MLP, qkv_bias=True, norm_layer=LN) for _ in range(DEC_DEPTH)]
        )
        self.decoder_norm = LN(DEC_DIM)
        self.decoder_pred = nn.Linear(DEC_DIM, PATCH * PATCH * 1, bias=True)

    def patchify(self, imgs):
        """(N, C, H, W) -> (N, L, p*p*C), pixel order (row in patch, column in patch, channel)."""
        n, c, h, w = imgs.shape
        g = h // PATCH
        x = imgs.reshape(n, c, g, PATCH, g, PATCH)
        x = torch.einsum("nchpwq->nhwpqc", x)
        return x.reshape(n, g * g, PATCH * PATCH * c)

    def random_masking(self, x, noise, mask_ratio):
        n, length, d = x.shape
        len_keep = int(length * (1 - mask_ratio))
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        x_masked = torch.gather(x, 1, ids_keep.unsqueeze(-1).repeat(1, 1, d))
        mask = torch.ones(n, length, dtype=x.dtype)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        return x_masked, mask, ids_restore

    def forward_encoder(self, imgs, noise):
        x = self.patch_embed(imgs)
        x = x + self.pos_embed[:, 1:, :]
        x, mask, ids_restore = self.random_masking(x, noise, MASK_RATIO)
        cls = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat([cls.expand(x.shape[0], -1, -1), x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, x, ids_restore):
        x = self.decoder_embed(x)
        n_mask = ids_restore.shape[1] + 1 - x.shape[1]
        mask_tokens = self.mask_token.repeat(x.shape[0], n_mask, 1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
        x = torch.cat([x[:, :1, :], x_], dim=1)
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        x = self.decoder_pred(x)
        return x[:, 1:, :]

    def forward_loss(self, imgs, pred, mask):
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)  # unbiased, as torch's default
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        loss = ((pred - target) ** 2).mean(dim=-1)
        return (loss * mask).sum() / mask.sum()

    def forward(self, imgs, noise):
        latent, mask, ids_restore = self.forward_encoder(imgs, noise)
        pred = self.forward_decoder(latent, ids_restore)
        loss = self.forward_loss(imgs, pred, mask)
        return loss, pred, mask, latent, ids_restore


def mae_fixture(norm_pix, overwrite):
    gen = torch.Generator().manual_seed(SEED + 1)
    model = TinyMAE(norm_pix).double().eval()
    randomise(model, gen, skip=("pos_embed", "decoder_pos_embed"))
    with torch.no_grad():
        model.pos_embed.copy_(fixed_pos_embed(DIM, GRID))
        model.decoder_pos_embed.copy_(fixed_pos_embed(DEC_DIM, GRID))

    raw = f32_round(seismic_like_images(gen, 2, IMG))
    images = f32_round(sfm_normalise(raw)).requires_grad_(True)
    noise = f32_round(torch.rand(2, NUM_PATCHES, generator=gen, dtype=torch.float64))
    loss, pred, mask, latent, ids_restore = model(images, noise)
    loss.backward()
    assert pred.shape == (2, NUM_PATCHES, PATCH * PATCH)
    assert latent.shape == (2, 1 + int(NUM_PATCHES * (1 - MASK_RATIO)), DIM)

    t = {}
    for n, p in model.named_parameters():
        t[f"param.{n}"] = p
    t["input.raw_images"] = raw
    t["input.images"] = images
    t["input.noise"] = noise
    t["output.pred"] = pred
    t["output.mask"] = mask
    t["output.ids_restore"] = ids_restore.to(torch.float64)
    t["output.latent"] = latent
    t["output.loss"] = loss.reshape(1)
    for n, p in model.named_parameters():
        if p.requires_grad:
            t[f"grad.{n}"] = p.grad
    t["grad.input.images"] = images.grad
    name = "mae_tiny_normpix" if norm_pix else "mae_tiny"
    print(f"{name}: loss {loss.item():.6f}, masked per sample {mask.sum(1).tolist()}")
    config = dict(VIT_CONFIG)
    config.update(
        {
            "decoder_embed_dim": DEC_DIM,
            "decoder_depth": DEC_DEPTH,
            "decoder_num_heads": DEC_HEADS,
            "mask_ratio": MASK_RATIO,
            "len_keep": int(NUM_PATCHES * (1 - MASK_RATIO)),
            "norm_pix_loss": norm_pix,
            "norm_pix_var": "unbiased (torch default), eps 1e-6 inside the sqrt",
            "patchify": "nchpwq->nhwpqc",
        }
    )
    write(
        os.path.join(FIXTURES, f"{name}.safetensors"),
        t,
        {"model": "MAE MaskedAutoencoderViT structure (SFM-like tiny)", "config": config},
        overwrite,
    )


# ---------------------------------------------------------------------------------------------
# Tiny SeisLM-like wav2vec2 (HF transformers)
# ---------------------------------------------------------------------------------------------

W2V_CONFIG = {
    "conv_dim": [16, 16],
    "conv_kernel": [3, 3],
    "conv_stride": [2, 2],
    "feat_extract_norm": "layer",
    "conv_bias": True,
    "hidden_size": 24,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 48,
    "num_conv_pos_embeddings": 8,
    "num_conv_pos_embedding_groups": 4,
    "do_stable_layer_norm": True,
    "layer_norm_eps": 1e-5,
    "hidden_act": "gelu",
    "feat_extract_activation": "gelu",
    "hidden_dropout": 0.0,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
    "feat_proj_dropout": 0.0,
    "final_dropout": 0.0,
    "layerdrop": 0.0,
    "mask_time_prob": 0.0,
    "mask_feature_prob": 0.0,
    "apply_spec_augment": False,
}
W2V_IN_CHANS, W2V_SAMPLES = 3, 101


def wav2vec2_fixture(overwrite):
    try:
        from transformers import Wav2Vec2Config, Wav2Vec2Model
    except ImportError as e:  # pragma: no cover
        print(f"skipping wav2vec2_tiny: transformers not importable ({e})")
        return
    gen = torch.Generator().manual_seed(SEED + 2)
    cfg = Wav2Vec2Config(**W2V_CONFIG)
    try:
        cfg._attn_implementation = "eager"
    except Exception:
        pass
    model = Wav2Vec2Model(cfg)
    # SeisLM: three input components.
    first = model.feature_extractor.conv_layers[0].conv
    model.feature_extractor.conv_layers[0].conv = nn.Conv1d(
        W2V_IN_CHANS, first.out_channels, first.kernel_size, first.stride, bias=True
    )
    # A 3-channel input does not go through HF's forward (it adds a channel axis), so the
    # model is run as SeisLM does: feature extractor on [N, 3, T], then the rest.
    model = model.double().eval()
    randomise(model, gen, skip=("masked_spec_embed",))

    waves = f32_round(torch.randn(2, W2V_IN_CHANS, W2V_SAMPLES, generator=gen, dtype=torch.float64))
    waves.requires_grad_(True)

    x = waves
    for layer in model.feature_extractor.conv_layers:
        x = layer(x)
    features = x.transpose(1, 2)  # [N, frames, conv_dim]
    hidden, extract_features = model.feature_projection(features)
    out = model.encoder(hidden, attention_mask=None)
    last = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    upstream = f32_round(torch.randn(last.shape, generator=gen, dtype=torch.float64))
    loss = (last * upstream).sum()
    loss.backward()

    params = dict(model.state_dict(keep_vars=True))
    # Weight norm: name the pair weight_g / weight_v whatever the torch version calls them.
    renamed = {}
    for n, p in params.items():
        if n == "masked_spec_embed":
            continue
        n2 = n.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v"
        )
        renamed[n2] = p
    t = {}
    for n, p in renamed.items():
        t[f"param.{n}"] = p
    t["input.waveforms"] = waves
    t["input.upstream"] = upstream
    t["output.last_hidden_state"] = last
    t["output.extract_features"] = extract_features
    t["output.loss"] = loss.reshape(1)
    for n, p in renamed.items():
        if isinstance(p, nn.Parameter) and p.requires_grad and p.grad is not None:
            t[f"grad.{n}"] = p.grad
    t["grad.input.waveforms"] = waves.grad
    print(f"wav2vec2_tiny: loss {loss.item():.6f}, hidden {tuple(last.shape)}")
    cfg_meta = dict(W2V_CONFIG)
    cfg_meta.update({"in_chans": W2V_IN_CHANS, "samples": W2V_SAMPLES, "weight_norm_dim": 2})
    write(
        os.path.join(FIXTURES, "wav2vec2_tiny.safetensors"),
        t,
        {"model": "HF Wav2Vec2Model (SeisLM-like tiny, 3 input channels)", "config": cfg_meta},
        overwrite,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--overwrite", action="store_true", help="replace existing fixtures")
    ap.add_argument(
        "--only", choices=["vit", "mae", "wav2vec2"], action="append", help="make only these"
    )
    args = ap.parse_args()
    os.makedirs(FIXTURES, exist_ok=True)
    torch.manual_seed(SEED)
    print("versions:", versions())
    only = set(args.only or ["vit", "mae", "wav2vec2"])
    if "vit" in only:
        vit_fixture(args.overwrite)
    if "mae" in only:
        mae_fixture(False, args.overwrite)
        mae_fixture(True, args.overwrite)
    if "wav2vec2" in only:
        wav2vec2_fixture(args.overwrite)


if __name__ == "__main__":
    main()
