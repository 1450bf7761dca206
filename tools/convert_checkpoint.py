#!/usr/bin/env python3
"""Convert published PyTorch checkpoints (SFM .pth, SeisLM Lightning .ckpt) to safetensors.

seisfuse reads safetensors only (memory-mapped, no pickle). This script turns a `torch.save`
checkpoint into a `.safetensors` file that `seisfuse weights inspect` lists and the Rust loader
(`seisfuse::weights::load_into_with`) fills a model from.

Where the weights are in the checkpoint (found automatically, or chosen with --key):
  - SFM (Sheng et al.; MAE code): a dict with the weights under 'model' (timm/MAE names such as
    `blocks.3.attn.qkv.weight`, and for pretraining checkpoints `decoder_blocks.*`, `mask_token`)
    beside 'optimizer', 'epoch', 'scaler' and 'args' (an argparse.Namespace, allowed).
  - SeisLM (Liu et al.; PyTorch Lightning): the weights under 'state_dict', named
    `model.wav2vec2.*` (the encoder), `model.quantizer.*`, `model.project_hid.*`,
    `model.project_q.*`. Names are kept as they are; the Rust loader strips `model.wav2vec2.`
    (LoadOptions::strip_prefix) and ignores the rest unless asked.
  - also 'model_state_dict', 'module', or a plain dict of tensors.

Weight norm (SeisLM's positional conv): `...conv.parametrizations.weight.original0/1` (torch's
new parametrization) are written as `...conv.weight_g` / `...conv.weight_v` (the HF names), unless
--keep-parametrization-names. The Rust loader accepts either spelling.

Pickle safety: torch.load runs with weights_only=True first. Lightning checkpoints also pickle
their hyper-parameters (e.g. ml_collections objects), which weights_only refuses; pass
--trust-pickle to load such a file with full unpickling, where classes that cannot be imported
are replaced by inert stubs (only the tensors are kept). Use it only for files you trust.

Usage:
    python tools/convert_checkpoint.py SFM-Base.pth sfm-base.safetensors
    python tools/convert_checkpoint.py --trust-pickle seislm_base.ckpt seislm-base.safetensors
    python tools/convert_checkpoint.py --exclude '^decoder_|^mask_token' mae.pth encoder.safetensors
    python tools/convert_checkpoint.py --self-test      # converts synthetic checkpoints
Needs torch (CPU is enough) and safetensors.
"""

import argparse
import os
import pickle
import re
import sys
import tempfile
import types

import torch
from safetensors.torch import save_file

WEIGHT_KEYS = ("model", "state_dict", "model_state_dict", "module")


class _Stub:
    """Stands in for a pickled object whose class cannot be imported."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def __call__(self, *args, **kwargs):
        return _Stub(*args)


class _LenientUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return type(name, (_Stub,), {"__module__": module})


_lenient_pickle = types.ModuleType("lenient_pickle")
_lenient_pickle.__dict__.update({k: getattr(pickle, k) for k in dir(pickle) if not k.startswith("__")})
_lenient_pickle.Unpickler = _LenientUnpickler


def load_checkpoint(path, trust_pickle):
    # MAE-style checkpoints (SFM) also save the training flags as an argparse.Namespace, a plain
    # attribute container that is safe to allow.
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - report and maybe retry below
        if not trust_pickle:
            raise SystemExit(
                f"{path}: torch.load(weights_only=True) failed: {e}\n"
                "If the file is a checkpoint you trust (e.g. a Lightning .ckpt with pickled "
                "hyper-parameters), run again with --trust-pickle."
            )
    return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_lenient_pickle)


def is_tensor_dict(d):
    return isinstance(d, dict) and d and all(isinstance(v, torch.Tensor) for v in d.values())


def find_state_dict(ckpt, key):
    if key is not None:
        if not isinstance(ckpt, dict) or key not in ckpt:
            keys = list(ckpt.keys()) if isinstance(ckpt, dict) else type(ckpt).__name__
            raise SystemExit(f"no key {key!r} in the checkpoint (it has {keys})")
        return ckpt[key], key
    if isinstance(ckpt, dict):
        for k in WEIGHT_KEYS:
            if k in ckpt and isinstance(ckpt[k], dict):
                return ckpt[k], k
        if any(isinstance(v, torch.Tensor) for v in ckpt.values()):
            return ckpt, None
    if isinstance(ckpt, torch.nn.Module):
        return ckpt.state_dict(), None
    keys = list(ckpt.keys()) if isinstance(ckpt, dict) else type(ckpt).__name__
    raise SystemExit(f"cannot find the weights in the checkpoint (top level: {keys}); use --key")


def convert(state, keep_parametrization_names, excludes, dtype):
    out, skipped = {}, []
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            skipped.append(f"{name} (not a tensor: {type(value).__name__})")
            continue
        if any(re.search(x, name) for x in excludes):
            skipped.append(f"{name} (excluded)")
            continue
        new = name
        if not keep_parametrization_names:
            new = new.replace(".parametrizations.weight.original0", ".weight_g")
            new = new.replace(".parametrizations.weight.original1", ".weight_v")
        if new in out:
            raise SystemExit(f"two tensors map to the name {new}")
        t = value.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        # safetensors refuses shared or strided storage: give each tensor its own copy.
        out[new] = t.contiguous().clone()
    return out, skipped


def summarise(tensors):
    n = sum(t.numel() for t in tensors.values())
    blocks = {m.group(1) for k in tensors for m in [re.search(r"(?:^|\.)blocks\.(\d+)\.", k)] if m}
    layers = {m.group(1) for k in tensors for m in [re.search(r"encoder\.layers\.(\d+)\.", k)] if m}
    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in tensors.values()})
    s = f"{len(tensors)} tensors, {n} elements ({n / 1e6:.2f}M), dtypes {dtypes}"
    if blocks:
        s += f", {len(blocks)} ViT blocks"
    if layers:
        s += f", {len(layers)} wav2vec2 layers"
    return s


def run(args):
    if os.path.exists(args.output) and not args.overwrite:
        raise SystemExit(f"{args.output} exists; pass --overwrite to replace it")
    ckpt = load_checkpoint(args.input, args.trust_pickle)
    state, key = find_state_dict(ckpt, args.key)
    dtype = {"keep": None, "f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[
        args.dtype
    ]
    tensors, skipped = convert(state, args.keep_parametrization_names, args.exclude, dtype)
    if not tensors:
        raise SystemExit(f"{args.input}: no tensors to write")
    meta = {
        "format": "pt",
        "source": os.path.basename(args.input),
        "source_key": key or "",
        "converted_by": "tools/convert_checkpoint.py",
        "torch": torch.__version__,
    }
    for k in ("epoch", "global_step"):
        if isinstance(ckpt, dict) and isinstance(ckpt.get(k), int):
            meta[k] = str(ckpt[k])
    out_dir = os.path.dirname(os.path.abspath(args.output))
    fd, tmp = tempfile.mkstemp(prefix=".convert-", suffix=".tmp", dir=out_dir)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        os.chmod(tmp, 0o644)
        os.replace(tmp, args.output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"{args.input} [{key or 'top level'}] -> {args.output}: {summarise(tensors)}")
    for s in skipped:
        print(f"  skipped {s}")
    print(f"check it with: seisfuse weights inspect {args.output}")


def self_test():
    """Converts a synthetic SFM-style .pth and a Lightning-style .ckpt and checks the result."""
    from safetensors import safe_open

    # A pickled non-tensor object from a module that is gone at load time, like Lightning's
    # hyper-parameters (ml_collections) on a machine without that package.
    fake = types.ModuleType("seisfuse_absent_module")
    Hyper = type("Hyper", (), {"__module__": fake.__name__})
    fake.Hyper = Hyper
    sys.modules[fake.__name__] = fake

    with tempfile.TemporaryDirectory() as d:
        sfm = {
            "cls_token": torch.randn(1, 1, 8),
            "pos_embed": torch.randn(1, 5, 8),
            "patch_embed.proj.weight": torch.randn(8, 1, 2, 2),
            "blocks.0.attn.qkv.weight": torch.randn(24, 8),
            "decoder_embed.weight": torch.randn(4, 8),
        }
        # MAE's save_model layout: model, optimizer, epoch, scaler, args (a Namespace)
        torch.save(
            {"model": sfm, "epoch": 7, "optimizer": {"state": {}}, "scaler": {},
             "args": argparse.Namespace(lr=1.0, model="mae_vit_base_patch16")},
            os.path.join(d, "sfm.pth"),
        )
        conv = torch.nn.Conv1d(4, 4, 3, groups=2)
        conv = torch.nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        sd = {f"model.wav2vec2.encoder.pos_conv_embed.conv.{k}": v for k, v in conv.state_dict().items()}
        sd["model.wav2vec2.feature_projection.projection.weight"] = torch.randn(4, 3)
        sd["model.quantizer.codevectors"] = torch.randn(1, 6, 2).to(torch.bfloat16)
        torch.save(
            {"state_dict": sd, "hyper_parameters": Hyper(), "global_step": 3},
            os.path.join(d, "seislm.ckpt"),
        )
        del sys.modules[fake.__name__]  # the lenient unpickler must stub the class
        ns = argparse.Namespace
        common = dict(overwrite=False, key=None, keep_parametrization_names=False, dtype="keep")
        run(ns(input=os.path.join(d, "sfm.pth"), output=os.path.join(d, "sfm.safetensors"),
               trust_pickle=False, exclude=["^decoder_"], **common))
        with safe_open(os.path.join(d, "sfm.safetensors"), "pt") as f:
            assert set(f.keys()) == set(sfm) - {"decoder_embed.weight"}, f.keys()
            assert torch.equal(f.get_tensor("pos_embed"), sfm["pos_embed"])
            assert f.metadata()["epoch"] == "7"
        # The Lightning file pickles a class: refused without --trust-pickle.
        try:
            run(ns(input=os.path.join(d, "seislm.ckpt"), output=os.path.join(d, "s.safetensors"),
                   trust_pickle=False, exclude=[], **common))
            raise AssertionError("weights_only load should have failed")
        except SystemExit as e:
            assert "--trust-pickle" in str(e), e
        run(ns(input=os.path.join(d, "seislm.ckpt"), output=os.path.join(d, "s.safetensors"),
               trust_pickle=True, exclude=[], **common))
        with safe_open(os.path.join(d, "s.safetensors"), "pt") as f:
            keys = set(f.keys())
            p = "model.wav2vec2.encoder.pos_conv_embed.conv."
            assert {p + "weight_g", p + "weight_v", p + "bias"} <= keys, keys
            assert "model.quantizer.codevectors" in keys
            assert f.get_tensor("model.quantizer.codevectors").dtype == torch.bfloat16
            g = sd[p + "parametrizations.weight.original0"]
            assert torch.equal(f.get_tensor(p + "weight_g"), g)
            assert f.metadata()["global_step"] == "3"
        try:
            run(ns(input=os.path.join(d, "sfm.pth"), output=os.path.join(d, "sfm.safetensors"),
                   trust_pickle=False, exclude=[], **common))
            raise AssertionError("overwrite should have been refused")
        except SystemExit as e:
            assert "exists" in str(e), e
    print("self-test passed")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input", nargs="?", help=".pth / .ckpt / .pt file")
    ap.add_argument("output", nargs="?", help=".safetensors file to write")
    ap.add_argument("--key", help="checkpoint key holding the weights (default: found)")
    ap.add_argument("--exclude", action="append", default=[], metavar="REGEX",
                    help="drop tensors whose name matches (repeatable)")
    ap.add_argument("--dtype", choices=["keep", "f32", "bf16", "f16"], default="keep",
                    help="convert floating-point tensors (default: keep as stored)")
    ap.add_argument("--keep-parametrization-names", action="store_true",
                    help="keep parametrizations.weight.original0/1 instead of weight_g/weight_v")
    ap.add_argument("--trust-pickle", action="store_true",
                    help="allow full unpickling (needed for Lightning .ckpt hyper-parameters)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing output")
    ap.add_argument("--self-test", action="store_true", help="run the built-in check and exit")
    args = ap.parse_args()
    if args.self_test:
        self_test()
        return
    if not args.input or not args.output:
        ap.error("give INPUT and OUTPUT (or --self-test)")
    run(args)


if __name__ == "__main__":
    sys.exit(main())
