#!/usr/bin/env python3
"""PyTorch side of seisfuse's benchmarks (docs/perf.md, issue 13): the same workloads as
`seisfuse bench sfm|seislm` and `seisfuse profile`, so that seisfuse/PyTorch ratios come from
one run on one machine.

Workloads (a training step is forward + backward of <tokens, fixed upstream> + AdamW, as the
seisfuse benchmarks do; no data loading):
  sfm-train     SFM encoder (ViT, 1-channel images, cls token, final LayerNorm)
  sfm-infer     SFM encoder forward only, no autograd
  mae           SFM MAE pretraining step (75 % masked, decoder D4d256, masked-patch MSE)
  seislm-train  SeisLM encoder (wav2vec2 style: conv extractor with LayerNorm + GELU, feature
                projection, weight-normed grouped positional conv, pre-LN transformer)
  attn-fwd      one SeisLM layer's attention alone (F.scaled_dot_product_attention over the
                encoder's frames, the SeisLM preset's heads), forward only, no autograd
  attn-train    the same, forward + backward of <out, fixed upstream> (seisfuse's side:
                `cargo bench --bench cpu_ops -- cpu_attention`, forward + backward rows)
Presets mirror src/models (sfm-tiny/base/large, seislm-tiny/base/large). Precisions: fp32
(TF32 off), tf32 (TF32 matmuls and convolutions), bf16 (autocast, fp32 master weights).

Examples:
  python3 tools/bench_torch.py                        # H200 table of docs/perf.md
  python3 tools/bench_torch.py --compile              # adds torch.compile rows
  python3 tools/bench_torch.py --device cpu           # tiny presets, 2 threads
  python3 tools/bench_torch.py --device cpu --workloads sfm-train --sfm sfm-base --batch 2 --json
  python3 tools/bench_torch.py --device cpu --workloads attn-fwd,attn-train --seislm seislm-base --batch 2
"""

import argparse
import json
import math
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    sys.exit(f"bench_torch.py needs PyTorch ({e}); install it with pip (torch)")

SFM = {  # img, patch, dim, depth, heads (src/models/sfm.rs)
    "sfm-tiny": (64, 8, 64, 4, 4),
    "sfm-base": (224, 16, 768, 12, 12),
    "sfm-large": (224, 16, 1024, 24, 16),
}
MAE_DECODER = {"sfm-tiny": (32, 2, 2)}  # dim, depth, heads; others (256, 4, 16)
SEISLM = {  # conv channels, hidden, layers, heads, ffn, pos kernel, pos groups (src/models/seislm.rs)
    "seislm-tiny": (32, 48, 2, 4, 96, 16, 4),
    "seislm-base": (256, 240, 6, 12, 3072, 128, 16),
    "seislm-large": (256, 768, 12, 12, 3072, 128, 16),
}


class Block(nn.Module):
    """Pre-LN transformer block (timm's ViT block; SeisLM's stable-layer-norm layer)."""

    def __init__(self, dim, heads, hidden, eps):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


def sincos_2d(dim, gh, gw):
    """MAE's fixed 2-D sin-cos position embedding with a zero row for the cls token."""

    def one(d, pos):
        omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2.0))
        out = pos.reshape(-1, 1).double() * omega
        return torch.cat([out.sin(), out.cos()], dim=1)

    ys, xs = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    pe = torch.cat([one(dim // 2, ys), one(dim // 2, xs)], dim=1)
    return torch.cat([torch.zeros(1, dim, dtype=torch.float64), pe]).float().unsqueeze(0)


class Vit(nn.Module):
    def __init__(self, img, patch, dim, depth, heads):
        super().__init__()
        self.patch = patch
        self.patch_embed = nn.Conv2d(1, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer("pos", sincos_2d(dim, img // patch, img // patch))
        self.blocks = nn.ModuleList(Block(dim, heads, 4 * dim, 1e-6) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def tokens(self, x):
        return self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos[:, 1:]

    def encode(self, t):
        cls = (self.cls + self.pos[:, :1]).expand(t.shape[0], -1, -1)
        x = torch.cat([cls, t], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def forward(self, x):
        return self.encode(self.tokens(x))


class Mae(nn.Module):
    def __init__(self, preset):
        super().__init__()
        img, patch, dim, depth, heads = SFM[preset]
        ddim, ddepth, dheads = MAE_DECODER.get(preset, (256, 4, 16))
        self.encoder = Vit(img, patch, dim, depth, heads)
        self.n = (img // patch) ** 2
        self.keep = int(self.n * 0.25)
        self.patch = patch
        self.embed = nn.Linear(dim, ddim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, ddim))
        self.register_buffer("dpos", sincos_2d(ddim, img // patch, img // patch))
        self.blocks = nn.ModuleList(Block(ddim, dheads, 4 * ddim, 1e-6) for _ in range(ddepth))
        self.norm = nn.LayerNorm(ddim, eps=1e-6)
        self.pred = nn.Linear(ddim, patch * patch)

    def forward(self, img, noise):
        b = img.shape[0]
        t = self.encoder.tokens(img)
        ids_shuffle = noise.argsort(dim=1)
        ids_restore = ids_shuffle.argsort(dim=1)
        keep = ids_shuffle[:, : self.keep]
        t = torch.gather(t, 1, keep.unsqueeze(-1).expand(-1, -1, t.shape[-1]))
        x = self.embed(self.encoder.encode(t))
        masks = self.mask_token.expand(b, self.n - self.keep, -1)
        y = torch.cat([x[:, 1:], masks], dim=1)
        y = torch.gather(y, 1, ids_restore.unsqueeze(-1).expand(-1, -1, y.shape[-1]))
        y = torch.cat([x[:, :1], y], dim=1) + self.dpos
        for blk in self.blocks:
            y = blk(y)
        pred = self.pred(self.norm(y))[:, 1:]
        p = self.patch
        target = img.unfold(2, p, p).unfold(3, p, p).reshape(b, self.n, p * p)
        mask = torch.ones(b, self.n, device=img.device)
        mask[:, : self.keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        loss = ((pred.float() - target.float()) ** 2).mean(-1)
        return (loss * mask).sum() / mask.sum()


class Seislm(nn.Module):
    def __init__(self, preset):
        super().__init__()
        conv, hidden, layers, heads, ffn, pk, pg = SEISLM[preset]
        self.convs = nn.ModuleList([nn.Conv1d(3, conv, 3, 2), nn.Conv1d(conv, conv, 3, 2)])
        self.conv_norms = nn.ModuleList([nn.LayerNorm(conv, eps=1e-5) for _ in range(2)])
        self.fp_norm = nn.LayerNorm(conv, eps=1e-5)
        self.fp = nn.Linear(conv, hidden)
        self.pos = nn.utils.parametrizations.weight_norm(
            nn.Conv1d(hidden, hidden, pk, padding=pk // 2, groups=pg), name="weight", dim=2
        )
        self.even = pk % 2 == 0
        self.layers = nn.ModuleList(Block(hidden, heads, ffn, 1e-5) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden, eps=1e-5)

    def forward(self, w):
        x = w
        for conv, norm in zip(self.convs, self.conv_norms):
            x = F.gelu(norm(conv(x).transpose(1, 2)).transpose(1, 2))
        h = self.fp(self.fp_norm(x.transpose(1, 2)))
        p = self.pos(h.transpose(1, 2))
        if self.even:
            p = p[:, :, :-1]
        h = h + F.gelu(p).transpose(1, 2)
        for layer in self.layers:
            h = layer(h)
        return self.norm(h)


def frames(samples):
    for _ in range(2):
        samples = (samples - 3) // 2 + 1
    return samples


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def time_steps(dev, step, warmup, iters):
    for _ in range(warmup):
        step()
    sync(dev)
    t = time.perf_counter()
    for _ in range(iters):
        step()
    sync(dev)
    return (time.perf_counter() - t) / iters


def set_precision(prec):
    tf32 = prec == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")


def autocast(dev, prec):
    return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=prec == "bf16")


def bench(args, dev, workload, preset, batch, prec, compiled):
    torch.manual_seed(0)
    set_precision(prec)
    g = torch.Generator(device="cpu").manual_seed(1)
    if workload in ("sfm-train", "sfm-infer"):
        img, *_ = SFM[preset]
        model = Vit(*SFM[preset]).to(dev)
        x = torch.randn(batch, 1, img, img, generator=g).to(dev)
    elif workload == "mae":
        img, *_ = SFM[preset]
        model = Mae(preset).to(dev)
        x = torch.randn(batch, 1, img, img, generator=g).to(dev)
    elif workload.startswith("attn"):
        return bench_attention(args, dev, workload, preset, batch, prec, compiled, g)
    else:
        model = Seislm(preset).to(dev)
        x = torch.randn(batch, 3, args.samples, generator=g).to(dev)
    fwd = torch.compile(model) if compiled else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8,
                            weight_decay=0.05, fused=dev.type == "cuda")
    upstream = None
    if workload == "sfm-infer":
        model.eval()

        def step():
            with torch.no_grad(), autocast(dev, prec):
                fwd(x)
    elif workload == "mae":
        n = (SFM[preset][0] // SFM[preset][1]) ** 2

        def step():
            noise = torch.rand(batch, n, device=dev)
            with autocast(dev, prec):
                loss = fwd(x, noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:
        with torch.no_grad(), autocast(dev, prec):
            shape = fwd(x).shape
        upstream = torch.randn(shape, generator=g).to(dev)

        def step():
            with autocast(dev, prec):
                out = fwd(x)
            loss = (out.float() * upstream).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    unit = "waveforms/s" if workload.startswith("seislm") else "images/s"
    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    return timed_row(args, dev, step, (workload, preset, batch, prec, compiled), unit, params_m)


def timed_row(args, dev, step, what, unit, params_m):
    """Times `step` and returns the table row for `what` = (workload, preset, batch,
    precision, compiled)."""
    workload, preset, batch, prec, compiled = what
    secs = time_steps(dev, step, args.warmup + (2 if compiled else 0), args.iters)
    return {
        "workload": workload,
        "preset": preset,
        "batch": batch,
        "precision": prec,
        "mode": "compile" if compiled else "eager",
        "ms_per_step": secs * 1e3,
        "samples_per_s": batch / secs,
        "unit": unit,
        "params_m": params_m,
    }


def bench_attention(args, dev, workload, preset, batch, prec, compiled, g):
    """One SeisLM layer's attention: q, k, v [batch, heads, frames, head dim]."""
    _, hidden, _, heads, *_ = SEISLM[preset]
    n = frames(args.samples)
    q, k, v = (torch.randn(batch, heads, n, hidden // heads, generator=g).to(dev)
               for _ in range(3))
    attn = torch.compile(F.scaled_dot_product_attention) if compiled else \
        F.scaled_dot_product_attention
    if workload == "attn-fwd":
        def step():
            with torch.no_grad(), autocast(dev, prec):
                attn(q, k, v)
    else:
        for t in (q, k, v):
            t.requires_grad_(True)
        upstream = torch.randn(q.shape, generator=g).to(dev)

        def step():
            for t in (q, k, v):
                t.grad = None
            with autocast(dev, prec):
                out = attn(q, k, v)
            (out.float() * upstream).sum().backward()

    return timed_row(args, dev, step, (workload, preset, batch, prec, compiled), "waveforms/s", 0.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--workloads", default="sfm-train,sfm-infer,mae,seislm-train")
    ap.add_argument("--sfm", help="SFM preset (default sfm-base on a GPU, sfm-tiny on the CPU)")
    ap.add_argument("--seislm", help="SeisLM presets, comma-separated (default "
                    "seislm-base,seislm-large on a GPU, seislm-tiny on the CPU)")
    ap.add_argument("--batch", type=int, help="training batch (default 64 on a GPU, 16 on the CPU)")
    ap.add_argument("--infer-batch", type=int, help="default 256 on a GPU, 64 on the CPU")
    ap.add_argument("--mae-batch", type=int, help="default 256 on a GPU, 16 on the CPU")
    ap.add_argument("--samples", type=int, default=3001)
    ap.add_argument("--precision", default=None,
                    help="comma-separated fp32,tf32,bf16 (default all three on a GPU, fp32 on the CPU)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (CPU device)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    dev = torch.device(args.device)
    gpu = dev.type == "cuda"
    if not gpu:
        torch.set_num_threads(args.threads)
    for flag, v in (("--batch", args.batch), ("--infer-batch", args.infer_batch),
                    ("--mae-batch", args.mae_batch), ("--iters", args.iters)):
        if v is not None and v < 1:
            ap.error(f"{flag} must be at least 1")
    sfm = args.sfm or ("sfm-base" if gpu else "sfm-tiny")
    seislm = (args.seislm or ("seislm-base,seislm-large" if gpu else "seislm-tiny")).split(",")
    precs = (args.precision or ("fp32,tf32,bf16" if gpu else "fp32")).split(",")
    for p in precs:
        if p not in ("fp32", "tf32", "bf16"):
            ap.error(f"unknown precision {p}: expected fp32, tf32 or bf16")
    if sfm not in SFM or any(s not in SEISLM for s in seislm):
        ap.error("unknown preset")
    bt = args.batch or (64 if gpu else 16)
    bi = args.infer_batch or (256 if gpu else 64)
    bm = args.mae_batch or (256 if gpu else 16)
    rows = []
    modes = [False, True] if args.compile else [False]
    for w in args.workloads.split(","):
        if w not in ("sfm-train", "sfm-infer", "mae", "seislm-train", "attn-fwd", "attn-train"):
            ap.error(f"unknown workload {w}")
        presets = seislm if w in ("seislm-train", "attn-fwd", "attn-train") else [sfm]
        batch = {"sfm-infer": bi, "mae": bm}.get(w, bt)
        for preset in presets:
            for p in precs:
                if w == "sfm-infer" and p == "tf32":
                    continue
                for c in modes:
                    try:
                        r = bench(args, dev, w, preset, batch, p, c)
                    except Exception as e:  # report and go on (e.g. out of memory)
                        r = {"workload": w, "preset": preset, "batch": batch, "precision": p,
                             "mode": "compile" if c else "eager", "error": str(e)[:200]}
                    rows.append(r)
                    if not args.json:
                        if "error" in r:
                            print(f"{w:<13} {preset:<13} b{batch:<4} {p:<5} {r['mode']:<8} "
                                  f"error: {r['error']}", flush=True)
                        else:
                            print(f"{w:<13} {preset:<13} b{batch:<4} {p:<5} {r['mode']:<8} "
                                  f"{r['ms_per_step']:9.2f} ms  {r['samples_per_s']:9.1f} "
                                  f"{r['unit']}", flush=True)
    meta = {"torch": torch.__version__, "device": torch.cuda.get_device_name() if gpu else
            f"cpu ({torch.get_num_threads()} threads)", "samples": args.samples}
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=1))
    else:
        print(f"# torch {meta['torch']} on {meta['device']}")


if __name__ == "__main__":
    main()
