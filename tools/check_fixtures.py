#!/usr/bin/env python3
"""Independent NumPy re-computation of the fixtures' forward passes (float64).

Checks that tests/fixtures/{vit_tiny,mae_tiny,mae_tiny_normpix,wav2vec2_tiny}.safetensors hold
what tools/make_fixtures.py says, with nothing from torch, timm or transformers: patch order,
sin-cos position embedding layout, pre-LN blocks, erf GELU, MAE's shuffle/keep/unshuffle and
masked loss, weight norm over dim 2, the positional conv's dropped last frame.
Needs numpy and safetensors only.

    python tools/check_fixtures.py
"""

import os
import sys
from math import erf

import numpy as np
from safetensors.numpy import load_file

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
ok = True


def report(name, diff, tol=1e-5):
    global ok
    good = diff < tol
    ok &= good
    print(f"{'ok  ' if good else 'FAIL'} {name}: max abs diff {diff:.3g}")


def ln(x, w, b, eps):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b


_erf = np.vectorize(erf)


def gelu(x):
    return 0.5 * x * (1 + _erf(x / np.sqrt(2)))


def softmax_attention(q, k, v):
    """q, k, v: [N, heads, L, hd]."""
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])
    s = np.exp(s - s.max(-1, keepdims=True))
    s /= s.sum(-1, keepdims=True)
    return s @ v


def params(d):
    return {k[6:]: v.astype(np.float64) for k, v in d.items() if k.startswith("param.")}


# ------------------------------------------------------------------------------ ViT and MAE


def vit_block(t, P, pre, heads):
    """timm Block: pre-LN (eps 1e-6), fused qkv, softmax attention, GELU MLP, residuals."""
    n, length, dim = t.shape
    hd = dim // heads

    def q(name):
        return P[f"{pre}{name}"]

    h = ln(t, q("norm1.weight"), q("norm1.bias"), 1e-6)
    qkv = h @ q("attn.qkv.weight").T + q("attn.qkv.bias")
    qkv = qkv.reshape(n, length, 3, heads, hd).transpose(2, 0, 3, 1, 4)
    o = softmax_attention(qkv[0], qkv[1], qkv[2]).transpose(0, 2, 1, 3).reshape(n, length, dim)
    t = t + o @ q("attn.proj.weight").T + q("attn.proj.bias")
    h = ln(t, q("norm2.weight"), q("norm2.bias"), 1e-6)
    h = gelu(h @ q("mlp.fc1.weight").T + q("mlp.fc1.bias"))
    return t + h @ q("mlp.fc2.weight").T + q("mlp.fc2.bias")


def patchify(x, p):
    """[N,C,H,W] -> [N, L, p*p*C]: patches row-major over the grid, pixels row-major in a patch."""
    n, c, hgt, _ = x.shape
    g = hgt // p
    return x.reshape(n, c, g, p, g, p).transpose(0, 2, 4, 3, 5, 1).reshape(n, g * g, p * p * c)


def patch_embed(x, P):
    w = P["patch_embed.proj.weight"]  # [D, C, p, p]: flatten (c, r, col); C = 1 here
    return patchify(x, w.shape[2]) @ w.reshape(w.shape[0], -1).T + P["patch_embed.proj.bias"]


def check_vit():
    d = load_file(os.path.join(HERE, "vit_tiny.safetensors"))
    P = params(d)
    x = d["input.images"].astype(np.float64)
    n = x.shape[0]
    t = patch_embed(x, P)
    t = np.concatenate([np.broadcast_to(P["cls_token"], (n, 1, 36)), t], 1) + P["pos_embed"]
    for b in range(2):
        t = vit_block(t, P, f"blocks.{b}.", 3)
    t = ln(t, P["norm.weight"], P["norm.bias"], 1e-6)
    report("vit_tiny output.tokens", np.abs(t - d["output.tokens"]).max())
    loss = (t * d["input.upstream"]).sum()
    report("vit_tiny output.loss (relative)", abs(loss - d["output.loss"][0]) / abs(loss))
    # cls row zero; channel 0 = sin(column), channel D/2 = sin(row) (MAE's meshgrid order)
    pe = P["pos_embed"][0]
    report("pos_embed cls row", np.abs(pe[0]).max())
    report("pos_embed (row 0, col 1) ch 0 = sin 1", abs(pe[1 + 1, 0] - np.sin(1.0)))
    report("pos_embed (row 1, col 0) ch 0 = sin 0", abs(pe[1 + 5, 0]))
    report("pos_embed (row 1, col 0) ch 18 = sin 1", abs(pe[1 + 5, 18] - np.sin(1.0)))
    raw = d["input.raw_images"].astype(np.float64)
    mean = raw.mean((1, 2, 3), keepdims=True)
    nr = (raw - mean) / (raw.std((1, 2, 3), keepdims=True) + 1e-6)
    report("input.images = normalised input.raw_images", np.abs(nr - x).max())


def check_mae(name, norm_pix):
    d = load_file(os.path.join(HERE, name))
    P = params(d)
    x = d["input.images"].astype(np.float64)
    noise = d["input.noise"].astype(np.float64)
    n = x.shape[0]
    ids_shuffle = np.argsort(noise, axis=1, kind="stable")
    ids_restore = np.argsort(ids_shuffle, axis=1, kind="stable")
    keep = ids_shuffle[:, :6]
    t = patch_embed(x, P) + P["pos_embed"][:, 1:]
    t = np.stack([t[i, keep[i]] for i in range(n)])
    cls = P["cls_token"] + P["pos_embed"][:, :1]
    t = np.concatenate([np.broadcast_to(cls, (n, 1, 36)), t], 1)
    for b in range(2):
        t = vit_block(t, P, f"blocks.{b}.", 3)
    latent = ln(t, P["norm.weight"], P["norm.bias"], 1e-6)
    report(f"{name} output.latent", np.abs(latent - d["output.latent"]).max())
    y = latent @ P["decoder_embed.weight"].T + P["decoder_embed.bias"]
    seq = np.concatenate([y[:, 1:], np.broadcast_to(P["mask_token"], (n, 19, 20))], 1)
    seq = np.stack([seq[i, ids_restore[i]] for i in range(n)])  # unshuffle
    y = np.concatenate([y[:, :1], seq], 1) + P["decoder_pos_embed"]
    y = vit_block(y, P, "decoder_blocks.0.", 2)
    y = ln(y, P["decoder_norm.weight"], P["decoder_norm.bias"], 1e-6)
    pred = (y @ P["decoder_pred.weight"].T + P["decoder_pred.bias"])[:, 1:]
    report(f"{name} output.pred", np.abs(pred - d["output.pred"]).max())
    mask = np.ones((n, 25))
    mask[:, :6] = 0
    mask = np.take_along_axis(mask, ids_restore, 1)
    report(f"{name} output.mask", np.abs(mask - d["output.mask"]).max())
    report(f"{name} output.ids_restore", np.abs(ids_restore - d["output.ids_restore"]).max())
    target = patchify(x, 8)
    if norm_pix:
        m = target.mean(-1, keepdims=True)
        var = target.var(-1, ddof=1, keepdims=True)
        target = (target - m) / np.sqrt(var + 1e-6)
    loss = (((pred - target) ** 2).mean(-1) * mask).sum() / mask.sum()
    report(f"{name} output.loss (relative)", abs(loss - d["output.loss"][0]) / abs(loss))


# ------------------------------------------------------------------------------ wav2vec2


def conv1d(x, w, b, stride=1, pad=0, groups=1):
    n, _, _ = x.shape
    o, cg, k = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad)))
    t_out = (x.shape[2] - k) // stride + 1
    out = np.zeros((n, o, t_out))
    og = o // groups
    for g in range(groups):
        xs = x[:, g * cg : (g + 1) * cg]
        for t in range(t_out):
            seg = xs[:, :, t * stride : t * stride + k]
            out[:, g * og : (g + 1) * og, t] = np.einsum("nck,ock->no", seg, w[g * og : (g + 1) * og])
    return out + b[None, :, None]


def check_wav2vec2():
    d = load_file(os.path.join(HERE, "wav2vec2_tiny.safetensors"))
    P = params(d)
    eps = 1e-5
    x = d["input.waveforms"].astype(np.float64)
    for i in range(2):
        pre = f"feature_extractor.conv_layers.{i}."
        x = conv1d(x, P[pre + "conv.weight"], P[pre + "conv.bias"], stride=2)
        x = ln(x.transpose(0, 2, 1), P[pre + "layer_norm.weight"], P[pre + "layer_norm.bias"], eps)
        x = gelu(x.transpose(0, 2, 1))
    f = x.transpose(0, 2, 1)
    ef = ln(f, P["feature_projection.layer_norm.weight"], P["feature_projection.layer_norm.bias"], eps)
    report("wav2vec2_tiny output.extract_features", np.abs(ef - d["output.extract_features"]).max())
    h = ef @ P["feature_projection.projection.weight"].T + P["feature_projection.projection.bias"]
    # weight norm over dim 2: w = g * v / ||v||, the norm over (out, in) for each kernel tap
    g = P["encoder.pos_conv_embed.conv.weight_g"]
    v = P["encoder.pos_conv_embed.conv.weight_v"]
    w = g * v / np.sqrt((v**2).sum(axis=(0, 1), keepdims=True))
    k = w.shape[2]
    pc = conv1d(h.transpose(0, 2, 1), w, P["encoder.pos_conv_embed.conv.bias"], pad=k // 2, groups=4)
    pc = pc[:, :, :-1]  # even kernel: drop the last frame
    h = h + gelu(pc).transpose(0, 2, 1)
    n, t, dim = h.shape
    heads = 4
    hd = dim // heads

    def split(z):
        return z.reshape(n, t, heads, hd).transpose(0, 2, 1, 3)

    for layer in range(2):
        pre = f"encoder.layers.{layer}."

        def lin(name, z, pre=pre):
            return z @ P[pre + name + ".weight"].T + P[pre + name + ".bias"]

        a = ln(h, P[pre + "layer_norm.weight"], P[pre + "layer_norm.bias"], eps)
        q = split(lin("attention.q_proj", a))
        kk = split(lin("attention.k_proj", a))
        vv = split(lin("attention.v_proj", a))
        o = softmax_attention(q, kk, vv).transpose(0, 2, 1, 3).reshape(n, t, dim)
        h = h + lin("attention.out_proj", o)
        m = ln(h, P[pre + "final_layer_norm.weight"], P[pre + "final_layer_norm.bias"], eps)
        h = h + lin("feed_forward.output_dense", gelu(lin("feed_forward.intermediate_dense", m)))
    h = ln(h, P["encoder.layer_norm.weight"], P["encoder.layer_norm.bias"], eps)
    report("wav2vec2_tiny output.last_hidden_state", np.abs(h - d["output.last_hidden_state"]).max())
    loss = (h * d["input.upstream"]).sum()
    report("wav2vec2_tiny output.loss (relative)", abs(loss - d["output.loss"][0]) / abs(loss))


if __name__ == "__main__":
    check_vit()
    check_mae("mae_tiny.safetensors", False)
    check_mae("mae_tiny_normpix.safetensors", True)
    check_wav2vec2()
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    sys.exit(0 if ok else 1)
