#!/usr/bin/env python3
"""PyTorch reference for the position-table interpolation of SFM-Finetune (tests/pos_embed_interp.rs).

    pip install "torch==2.11.*" numpy safetensors
    python tools/make_pos_embed_fixtures.py       # writes tests/fixtures/pos_embed_bicubic.safetensors

SFM-Finetune's util/pos_embed.py::interpolate_pos_embed (MAE's, github.com/shenghanlin/
SeismicFoundationModel) keeps the cls row, reshapes the grid rows of `pos_embed` [1, 1 + g*g, D]
to (1, D, g, g) and calls F.interpolate(size=(h, w), mode='bicubic', align_corners=False). This
script does exactly that (with a non-square source grid allowed) on float32 tables and stores,
per case, `<case>.input` [1, 1 + gh*gw, D] and `<case>.output` [1, 1 + h*w, D]:

    small_7x7    4x4  -> 7x7,   D 8   (random values)
    small_3x5    4x4  -> 3x5,   D 8   (random values, non-square target, a downsample)
    wide_6x10    3x5  -> 6x10,  D 8   (non-square source)
    real_32x32   14x14 -> 32x32, D 8  (224 -> 512 images at patch 16; MAE sin-cos + noise)

Used 2026-11-26 with torch 2.11.0 (CPU). About 45 KB.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "pos_embed_bicubic.safetensors")


def sincos_2d(dim, gh, gw):
    """MAE's get_2d_sincos_pos_embed (w first), with the cls row of zeros."""
    def one_d(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)
    grid = np.meshgrid(np.arange(gw, dtype=np.float32), np.arange(gh, dtype=np.float32))
    emb = np.concatenate([one_d(dim // 2, grid[0]), one_d(dim // 2, grid[1])], axis=1)
    return np.concatenate([np.zeros([1, dim]), emb], axis=0)


def interpolate_pos_embed(table, src, dst):
    """SFM's interpolate_pos_embed on [1, 1 + gh*gw, D] from grid src to grid dst."""
    d = table.shape[-1]
    extra = table[:, :1]
    pos = table[:, 1:].reshape(-1, src[0], src[1], d).permute(0, 3, 1, 2)
    pos = F.interpolate(pos, size=dst, mode="bicubic", align_corners=False)
    pos = pos.permute(0, 2, 3, 1).flatten(1, 2)
    return torch.cat((extra, pos), dim=1)


def main():
    g = torch.Generator().manual_seed(20261126)
    tensors = {}
    cases = [
        ("small_7x7", (4, 4), (7, 7), None),
        ("small_3x5", (4, 4), (3, 5), None),
        ("wide_6x10", (3, 5), (6, 10), None),
        ("real_32x32", (14, 14), (32, 32), "sincos"),
    ]
    for name, src, dst, kind in cases:
        d = 8
        n = 1 + src[0] * src[1]
        if kind == "sincos":
            base = torch.from_numpy(sincos_2d(d, *src)).float()[None]
            table = base + 0.05 * torch.randn(1, n, d, generator=g)
        else:
            table = torch.randn(1, n, d, generator=g)
        table = table.float().contiguous()
        out = interpolate_pos_embed(table, src, dst)
        assert out.shape == (1, 1 + dst[0] * dst[1], d)
        tensors[f"{name}.input"] = table
        tensors[f"{name}.output"] = out.contiguous()
    save_file(tensors, OUT, metadata={"producer": f"tools/make_pos_embed_fixtures.py, torch {torch.__version__}"})
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
