#!/usr/bin/env python3
"""PyTorch reference for the SFM-Finetune heads (tests/sfm_heads_torch.rs).

    pip install "torch==2.11.*" numpy safetensors
    python tools/make_sfm_head_fixtures.py     # writes tests/fixtures/sfm_heads_torch.safetensors

Small PyTorch modules laid out and named as SFM-Finetune's heads (github.com/shenghanlin/
SeismicFoundationModel, SFM-Finetune/models_Segmentation.py and models_Regression.py; written
here from their structure, not copied):

- segmentation, `decoder` = VIT_MLAHead: mlahead.head2..head5, each Sequential(conv3x3 no bias,
  BN, ReLU, conv3x3 no bias, BN, ReLU) then F.interpolate(x4, bilinear, align_corners=True);
  concatenated; cls conv3x3 with bias; F.interpolate(size=(16h, 16w), bilinear,
  align_corners=True). Widths: features 8, branches 4, 2 classes, grid 2x3.
- regression, `decoder` = DecoderCup: conv_more = Conv2dReLU(1 -> skip) of the image; 4 blocks,
  each UpsamplingBilinear2d(x2) (align_corners=True), concat skip (last block), conv1, conv2
  (Conv2dReLU = Sequential(conv3x3 no bias, BN, ReLU)); `segmentation_head` =
  Sequential(conv1x1 -> 1). Widths: tokens 8, channels [8, 6, 4, 4], skip 3, grid 2x3.

BatchNorms get random affine parameters and running statistics. Stored: `seg.*` / `reg.*` (the
state dicts, num_batches_tracked included), inputs `seg_in.f{0..3}` [1, 8, 2, 3],
`reg_in.tokens` [1, 8, 2, 3], `reg_in.image` [1, 1, 32, 48], and outputs in eval mode
(`*_out.eval`, running statistics) and train mode (`*_out.train`, batch statistics), computed in
float64 and stored as float32. Used 2026-11-26 with torch 2.11.0 (CPU). About 50 KB.
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "sfm_heads_torch.safetensors")


def conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class MlaBranches(nn.Module):
    def __init__(self, dim, width):
        super().__init__()
        for k in range(2, 6):
            setattr(self, f"head{k}", nn.Sequential(*conv_bn_relu(dim, width), *conv_bn_relu(width, width)))


class MlaDecoder(nn.Module):
    def __init__(self, dim, width, classes):
        super().__init__()
        self.mlahead = MlaBranches(dim, width)
        self.cls = nn.Conv2d(4 * width, classes, 3, padding=1)

    def forward(self, feats):
        h, w = feats[0].shape[-2:]
        ups = []
        for k, f in zip(range(2, 6), feats):
            y = getattr(self.mlahead, f"head{k}")(f)
            ups.append(F.interpolate(y, (4 * h, 4 * w), mode="bilinear", align_corners=True))
        x = self.cls(torch.cat(ups, dim=1))
        return F.interpolate(x, size=(16 * h, 16 * w), mode="bilinear", align_corners=True)


class Segmentation(nn.Module):
    def __init__(self, dim, width, classes):
        super().__init__()
        self.decoder = MlaDecoder(dim, width, classes)

    def forward(self, feats):
        return self.decoder(feats)


class UpBlock(nn.Module):
    def __init__(self, cin, cout, skip):
        super().__init__()
        self.conv1 = nn.Sequential(*conv_bn_relu(cin + skip, cout))
        self.conv2 = nn.Sequential(*conv_bn_relu(cout, cout))
        self.up = nn.UpsamplingBilinear2d(scale_factor=2)

    def forward(self, x, skip=None):
        x = self.up(x)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class Cup(nn.Module):
    def __init__(self, dim, channels, skip):
        super().__init__()
        self.conv_more = nn.Sequential(*conv_bn_relu(1, skip))
        ins = [dim] + channels[:-1]
        skips = [0, 0, 0, skip]
        self.blocks = nn.ModuleList([UpBlock(i, o, s) for i, o, s in zip(ins, channels, skips)])

    def forward(self, tokens, image):
        skips = [None, None, None, self.conv_more(image)]
        x = tokens
        for blk, s in zip(self.blocks, skips):
            x = blk(x, s)
        return x


class Regression(nn.Module):
    def __init__(self, dim, channels, skip):
        super().__init__()
        self.decoder = Cup(dim, channels, skip)
        self.segmentation_head = nn.Sequential(nn.Conv2d(channels[-1], 1, 1), nn.Identity())

    def forward(self, tokens, image):
        return self.segmentation_head(self.decoder(tokens, image))


def randomise_bn(model, g):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = 1.0 + 0.3 * torch.randn(c, generator=g)
            m.bias.data = 0.2 * torch.randn(c, generator=g)
            m.running_mean.data = 0.1 * torch.randn(c, generator=g)
            m.running_var.data = 0.5 + torch.rand(c, generator=g)


def f32(t):
    return t.detach().float().contiguous()


def main():
    torch.manual_seed(7)
    g = torch.Generator().manual_seed(20261126)
    out = {}
    dim, h, w, b = 8, 2, 3, 1

    seg = Segmentation(dim, 4, 2)
    randomise_bn(seg, g)
    feats = [torch.randn(b, dim, h, w, generator=g) for _ in range(4)]
    for k, v in seg.state_dict().items():
        out[f"seg.{k}"] = v.detach().clone().contiguous() if not v.is_floating_point() else f32(v)
    for i, f in enumerate(feats):
        out[f"seg_in.f{i}"] = f32(f)
    seg = seg.double()
    fd = [f.double() for f in feats]
    seg.eval()
    with torch.no_grad():
        out["seg_out.eval"] = f32(seg(fd))
        seg.train()
        out["seg_out.train"] = f32(seg(fd))

    reg = Regression(dim, [8, 6, 4, 4], 3)
    randomise_bn(reg, g)
    tokens = torch.randn(b, dim, h, w, generator=g)
    image = torch.randn(b, 1, 16 * h, 16 * w, generator=g)
    for k, v in reg.state_dict().items():
        out[f"reg.{k}"] = v.detach().clone().contiguous() if not v.is_floating_point() else f32(v)
    out["reg_in.tokens"] = f32(tokens)
    out["reg_in.image"] = f32(image)
    reg = reg.double()
    reg.eval()
    with torch.no_grad():
        out["reg_out.eval"] = f32(reg(tokens.double(), image.double()))
        reg.train()
        out["reg_out.train"] = f32(reg(tokens.double(), image.double()))

    save_file(out, OUT, metadata={"producer": f"tools/make_sfm_head_fixtures.py, torch {torch.__version__}"})
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes, {len(out)} tensors)")


if __name__ == "__main__":
    main()
