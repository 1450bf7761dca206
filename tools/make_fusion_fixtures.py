#!/usr/bin/env python3
"""PyTorch reference for the fusion layers (tests/fusion_torch.rs).

    pip install torch numpy safetensors
    python tools/make_fusion_fixtures.py     # writes tests/fixtures/fusion_torch.safetensors

Two small modules, written here from the ImageBind/CLIP recipe (docs/fusion.md) and
 from the definition of cross-attention, with the parameter names of
seisfuse's `BindingHead` and `CrossBlock`:

- `bind{k}.*` (k = 0, 1): the binding head. Per modality LayerNorm(eps 1e-6) over the tokens,
  pooling (image: token 0, waveform: mean over tokens), Linear(no bias) to D, F.normalize;
  logits = clip(exp(log_logit_scale), max=100) * e_img @ e_wave.T; loss = (CE(logits, arange) +
  CE(logits.T, arange)) / 2. Case 0 starts at log(1/0.07); case 1 at log(150), above the clamp
  (no gradient reaches the scale). Inputs `bind{k}_in.image` [4, 5, 12] and `bind{k}_in.wave`
  [4, 9, 10]; outputs `bind{k}_out.{loss,logits}` and the gradients `bind{k}_grad.*` of the
  inputs (`image`, `wave`) and of every parameter (by name).
- `cross.*`: a pre-LN cross-attention block, queries [2, 5, 16] attending to a context
  [2, 11, 16] (unequal lengths), 4 heads: h = x + out_proj(attn(q_proj(norm1(x)),
  k_proj(c'), v_proj(c'))) with c' = norm_context(ctx), y = h + fc2(gelu(fc1(norm2(h)))), exact
  erf GELU, LayerNorm eps 1e-6. Loss = sum(y * cross_in.weight). Outputs `cross_out.y` and the
  gradients `cross_grad.*` of `x`, `ctx` and every parameter.

Everything is computed in float64 from float32-representable values and stored as float32.
Parameters get random values (LayerNorm affines too). Used 2026-12 with torch 2.15 (CPU).
About 40 KB.
"""
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "fusion_torch.safetensors")

torch.manual_seed(7)
DT = torch.float64


def f32able(t):
    """Rounds to float32 and back, so the Rust side reads exactly the values used here."""
    return t.float().double()


def randomise(module, scale=0.5):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(f32able(torch.randn_like(p) * scale))


class ModalityHead(nn.Module):
    def __init__(self, width, dim, pool):
        super().__init__()
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.proj = nn.Linear(width, dim, bias=False)
        self.pool = pool

    def forward(self, tokens):
        x = self.norm(tokens)
        x = x[:, 0] if self.pool == "cls" else x.mean(dim=1)
        return F.normalize(self.proj(x), dim=-1)


class BindingHead(nn.Module):
    def __init__(self, ci, cw, dim, log_scale):
        super().__init__()
        self.image = ModalityHead(ci, dim, "cls")
        self.wave = ModalityHead(cw, dim, "mean")
        self.log_logit_scale = nn.Parameter(torch.tensor([log_scale], dtype=DT))

    def forward(self, ti, tw):
        ei, ew = self.image(ti), self.wave(tw)
        logits = torch.clip(self.log_logit_scale.exp(), max=100.0) * ei @ ew.T
        target = torch.arange(logits.shape[0])
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        return loss, logits


class CrossAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.heads = heads

    def forward(self, x, ctx):
        b, nq, c = x.shape
        nk, h, d = ctx.shape[1], self.heads, c // self.heads
        q = self.q_proj(x).view(b, nq, h, d).transpose(1, 2)
        k = self.k_proj(ctx).view(b, nk, h, d).transpose(1, 2)
        v = self.v_proj(ctx).view(b, nk, h, d).transpose(1, 2)
        p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
        return self.out_proj((p @ v).transpose(1, 2).reshape(b, nq, c))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class CrossBlock(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.norm_context = nn.LayerNorm(dim, eps=1e-6)
        self.attn = CrossAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x, ctx):
        h = x + self.attn(self.norm1(x), self.norm_context(ctx))
        return h + self.mlp(self.norm2(h))


def main():
    out = {}

    def put(name, t):
        out[name] = t.detach().float().contiguous()

    for k, log_scale in enumerate([math.log(1 / 0.07), math.log(150.0)]):
        m = BindingHead(12, 10, 6, 0.0).to(DT)
        randomise(m)
        with torch.no_grad():
            m.log_logit_scale.fill_(float(torch.tensor(log_scale).float()))
        ti = f32able(torch.randn(4, 5, 12, dtype=DT)).requires_grad_()
        tw = f32able(torch.randn(4, 9, 10, dtype=DT)).requires_grad_()
        loss, logits = m(ti, tw)
        loss.backward()
        for n, p in m.named_parameters():
            put(f"bind{k}.{n}", p)
            put(f"bind{k}_grad.{n}", p.grad)
        put(f"bind{k}_in.image", ti)
        put(f"bind{k}_in.wave", tw)
        put(f"bind{k}_out.loss", loss.reshape(1))
        put(f"bind{k}_out.logits", logits)
        put(f"bind{k}_grad.image", ti.grad)
        put(f"bind{k}_grad.wave", tw.grad)

    m = CrossBlock(16, 4, 24).to(DT)
    randomise(m, 0.3)
    x = f32able(torch.randn(2, 5, 16, dtype=DT)).requires_grad_()
    ctx = f32able(torch.randn(2, 11, 16, dtype=DT)).requires_grad_()
    w = f32able(torch.randn(2, 5, 16, dtype=DT))
    y = m(x, ctx)
    (y * w).sum().backward()
    for n, p in m.named_parameters():
        put(f"cross.{n}", p)
        put(f"cross_grad.{n}", p.grad)
    put("cross_in.x", x)
    put("cross_in.ctx", ctx)
    put("cross_in.weight", w)
    put("cross_out.y", y)
    put("cross_grad.x", x.grad)
    put("cross_grad.ctx", ctx.grad)

    save_file(out, OUT)
    print(f"wrote {len(out)} tensors to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
