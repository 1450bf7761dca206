#!/usr/bin/env python3
"""Independent NumPy re-computation of the fixtures' forward passes (float64).

Checks that tests/fixtures/vit_tiny.safetensors and wav2vec2_tiny.safetensors hold what their
documentation in tools/make_fixtures.py says, with nothing from timm or transformers: patch
order, sin-cos position embedding layout, pre-LN blocks, erf GELU, weight norm over dim 2, the
positional conv's dropped last frame. Needs numpy and safetensors only.

    python tools/check_fixtures.py
"""
import os
import sys

import numpy as np
from safetensors.numpy import load_file

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
ok = True


def report(name, diff, tol=1e-5):
    global ok
    good = diff < tol
    ok &= good
    print(f"{'ok  ' if good else 'FAIL'} {name}: max abs diff {diff:.3g}")


def check_vit():
    d = load_file(os.path.join(HERE, "vit_tiny.safetensors"))
    from math import erf
    import sys
    d = load_file("tests/fixtures/vit_tiny.safetensors")
    P = {k[6:]: v.astype(np.float64) for k, v in d.items() if k.startswith("param.")}
    x = d["input.images"].astype(np.float64)
    def ln(x, w, b, eps=1e-6):
        m = x.mean(-1, keepdims=True); v = ((x-m)**2).mean(-1, keepdims=True)
        return (x-m)/np.sqrt(v+eps)*w+b
    verf = np.vectorize(erf)
    def gelu(x): return 0.5*x*(1+verf(x/np.sqrt(2)))
    N=2; p=8; g=5; D=36; H=3
    W = P["patch_embed.proj.weight"].reshape(D, 64)
    patches = x.reshape(N,1,g,p,g,p).transpose(0,2,4,1,3,5).reshape(N,25,64)
    t = patches @ W.T + P["patch_embed.proj.bias"]
    t = np.concatenate([np.broadcast_to(P["cls_token"], (N,1,D)), t], 1) + P["pos_embed"]
    for b in range(2):
        q = lambda n: P[f"blocks.{b}.{n}"]
        h = ln(t, q("norm1.weight"), q("norm1.bias"))
        qkv = h @ q("attn.qkv.weight").T + q("attn.qkv.bias")
        qkv = qkv.reshape(N, 26, 3, H, 12).transpose(2,0,3,1,4)
        a = qkv[0] @ qkv[1].transpose(0,1,3,2) / np.sqrt(12)
        a = np.exp(a - a.max(-1, keepdims=True)); a /= a.sum(-1, keepdims=True)
        o = (a @ qkv[2]).transpose(0,2,1,3).reshape(N,26,D)
        t = t + o @ q("attn.proj.weight").T + q("attn.proj.bias")
        h = ln(t, q("norm2.weight"), q("norm2.bias"))
        h = gelu(h @ q("mlp.fc1.weight").T + q("mlp.fc1.bias")) @ q("mlp.fc2.weight").T + q("mlp.fc2.bias")
        t = t + h
    t = ln(t, P["norm.weight"], P["norm.bias"])
    ref = d["output.tokens"]
    report("vit_tiny output.tokens", np.abs(t - ref).max())
    loss = (t * d["input.upstream"]).sum()
    report("vit_tiny output.loss (relative)", abs(loss - d["output.loss"][0]) / abs(loss))
    # pos embed check: channel 0..8 = sin(col*omega), first half encodes column
    pe = P["pos_embed"][0]
    # cls row zero; channel 0 = sin(column), channel D/2 = sin(row) (MAE's meshgrid order)
    report("pos_embed cls row", np.abs(pe[0]).max())
    report("pos_embed (row 0, col 1) ch 0 = sin 1", abs(pe[1 + 1, 0] - np.sin(1.0)))
    report("pos_embed (row 1, col 0) ch 0 = sin 0", abs(pe[1 + 5, 0]))
    report("pos_embed (row 1, col 0) ch 18 = sin 1", abs(pe[1 + 5, 18] - np.sin(1.0)))
    raw = d["input.raw_images"].astype(np.float64)
    nr = (raw - raw.mean((1,2,3),keepdims=True))/(raw.std((1,2,3),keepdims=True)+1e-6)
    report("input.images = normalised input.raw_images", np.abs(nr - x).max())


def check_wav2vec2():
    d = load_file(os.path.join(HERE, "wav2vec2_tiny.safetensors"))
    from math import erf
    d = load_file("tests/fixtures/wav2vec2_tiny.safetensors")
    P = {k[6:]: v.astype(np.float64) for k, v in d.items() if k.startswith("param.")}
    verf = np.vectorize(erf)
    def gelu(x): return 0.5*x*(1+verf(x/np.sqrt(2)))
    def ln(x, w, b, eps=1e-5):
        m = x.mean(-1, keepdims=True); v = ((x-m)**2).mean(-1, keepdims=True)
        return (x-m)/np.sqrt(v+eps)*w+b
    def conv1d(x, w, b, stride=1, pad=0, groups=1):
        N, C, T = x.shape; O, Cg, K = w.shape
        x = np.pad(x, ((0,0),(0,0),(pad,pad)))
        To = (x.shape[2]-K)//stride+1
        out = np.zeros((N, O, To))
        og = O//groups
        for g in range(groups):
            xs = x[:, g*Cg:(g+1)*Cg]
            for t in range(To):
                seg = xs[:, :, t*stride:t*stride+K]
                out[:, g*og:(g+1)*og, t] = np.einsum("nck,ock->no", seg, w[g*og:(g+1)*og])
        return out + b[None,:,None]
    x = d["input.waveforms"].astype(np.float64)
    for i in range(2):
        q = lambda n: P[f"feature_extractor.conv_layers.{i}.{n}"]
        x = conv1d(x, q("conv.weight"), q("conv.bias"), stride=2)
        x = ln(x.transpose(0,2,1), q("layer_norm.weight"), q("layer_norm.bias")).transpose(0,2,1)
        x = gelu(x)
    f = x.transpose(0,2,1)
    ef = ln(f, P["feature_projection.layer_norm.weight"], P["feature_projection.layer_norm.bias"])
    report("wav2vec2_tiny output.extract_features", np.abs(ef - d["output.extract_features"]).max())
    h = ef @ P["feature_projection.projection.weight"].T + P["feature_projection.projection.bias"]
    g = P["encoder.pos_conv_embed.conv.weight_g"]; v = P["encoder.pos_conv_embed.conv.weight_v"]
    w = g * v / np.sqrt((v**2).sum(axis=(0,1), keepdims=True))
    pc = conv1d(h.transpose(0,2,1), w, P["encoder.pos_conv_embed.conv.bias"], pad=4, groups=4)[:, :, :-1]
    h = h + gelu(pc).transpose(0,2,1)
    N, T, D = h.shape; H = 4; hd = 6
    for l in range(2):
        q = lambda n: P[f"encoder.layers.{l}.{n}"]
        r = h
        a = ln(h, q("layer_norm.weight"), q("layer_norm.bias"))
        Q = (a @ q("attention.q_proj.weight").T + q("attention.q_proj.bias")).reshape(N,T,H,hd).transpose(0,2,1,3)
        K = (a @ q("attention.k_proj.weight").T + q("attention.k_proj.bias")).reshape(N,T,H,hd).transpose(0,2,1,3)
        V = (a @ q("attention.v_proj.weight").T + q("attention.v_proj.bias")).reshape(N,T,H,hd).transpose(0,2,1,3)
        s = Q @ K.transpose(0,1,3,2) / np.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True)); s /= s.sum(-1, keepdims=True)
        o = (s @ V).transpose(0,2,1,3).reshape(N,T,D)
        h = r + o @ q("attention.out_proj.weight").T + q("attention.out_proj.bias")
        m = ln(h, q("final_layer_norm.weight"), q("final_layer_norm.bias"))
        m = gelu(m @ q("feed_forward.intermediate_dense.weight").T + q("feed_forward.intermediate_dense.bias"))
        h = h + m @ q("feed_forward.output_dense.weight").T + q("feed_forward.output_dense.bias")
    h = ln(h, P["encoder.layer_norm.weight"], P["encoder.layer_norm.bias"])
    ref = d["output.last_hidden_state"]
    report("wav2vec2_tiny output.last_hidden_state", np.abs(h - ref).max())
    loss = (h * d["input.upstream"]).sum()
    report("wav2vec2_tiny output.loss (relative)", abs(loss - d["output.loss"][0]) / abs(loss))


if __name__ == "__main__":
    check_vit()
    check_wav2vec2()
    sys.exit(0 if ok else 1)
