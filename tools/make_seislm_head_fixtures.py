#!/usr/bin/env python3
"""Parity fixtures for the SeisLM downstream heads, built in PyTorch with the structure and
module names of the SeisLM repository (liutianlin0121/seisLM, seisLM/model/task_specific/:
`DoubleConvBlock` in shared_task_specific.py, the picking head of
`MultiDimWav2Vec2ForFrameClassification` in phasepick_models.py, the `head` of
`Wav2Vec2ForSequenceClassification` in foreshock_aftershock_models.py), written here from that
description (no code is imported from the repository).

Regenerate (torch 2.11, CPU):
    python tools/make_seislm_head_fixtures.py   # writes tests/fixtures/seislm_heads.safetensors

Contents (float32; the BatchNorm step counters as int64, as a PyTorch state dict has them):
  pick.<name>            the picking head's state dict: double_conv.double_conv.{0,1,4,5}.*,
                         classifier.*  (hidden 6 + 3 channels = width 9, 3 classes)
  event.<name>           the event head's state dict: head.{1,2}.double_conv.{0,1,4,5}.*,
                         head.4.*  (hidden 6, projection 5, 4 classes)
  input.hidden           [2, 11, 6] encoder hidden states
  input.wave             [2, 3, 43] normalised waveforms (picking head)
  input.pick_up          [2, 43, 3] weights of the picking loss sum(logits * pick_up)
  input.event_hidden     [2, 80, 6] hidden states for the event head (80 → 39 → 19 → 9 → 4
                         frames: BatchNorm over 2 × 4 values at the end, well conditioned)
  input.event_up         [2, 4]
  eval.pick_logits       [2, 43, 3] eval mode (running statistics), before the softmax
  eval.event_logits      [2, 4]
  train.pick_logits, train.event_logits      train mode (batch statistics), dropout 0
  grad.pick.<name>, grad.event.<name>        train-mode gradients of the two losses
  grad.pick.hidden, grad.event.hidden        and of the hidden states
Running statistics are set to non-trivial values first, so eval mode tests them.
"""
import os

import torch
from torch import nn
from safetensors.torch import save_file


def double_conv(cin, cout, strides, padding, p):
    # DoubleConvBlock.double_conv: conv (no bias), BN, GELU, dropout, twice.
    return nn.Sequential(
        nn.Conv1d(cin, cout, 3, stride=strides[0], padding=padding, bias=False),
        nn.BatchNorm1d(cout),
        nn.GELU(),
        nn.Dropout(p),
        nn.Conv1d(cout, cout, 3, stride=strides[1], padding=padding, bias=False),
        nn.BatchNorm1d(cout),
        nn.GELU(),
        nn.Dropout(p),
    )


class Block(nn.Module):
    def __init__(self, cin, cout, strides, padding, p):
        super().__init__()
        self.double_conv = double_conv(cin, cout, strides, padding, p)

    def forward(self, x):
        return self.double_conv(x)


class PickHead(nn.Module):
    """Interpolate hidden states to the input length, concatenate the waveforms, DoubleConv
    ("same", stride 1, width hidden + 3), dropout, Linear; logits (the softmax follows)."""

    def __init__(self, hidden, chans, classes, p):
        super().__init__()
        w = hidden + chans
        self.classifier = nn.Linear(w, classes)
        self.double_conv = Block(w, w, [1, 1], "same", p)
        self.hidden_dropout = nn.Dropout(p)

    def forward(self, hidden, wave):
        h = hidden.transpose(1, 2)
        h = nn.functional.interpolate(h, size=wave.shape[-1], mode="linear", align_corners=False)
        x = torch.cat([h, wave], dim=1)
        x = self.double_conv(x).transpose(1, 2)
        return self.classifier(self.hidden_dropout(x))


class EventHead(nn.Module):
    """Two DoubleConv blocks (stride 2 in both convolutions, no padding), time mean, Linear."""

    def __init__(self, hidden, proj, classes, p):
        super().__init__()
        self.head = nn.Sequential(
            nn.Identity(),  # the rearrange b l c -> b c l (done in forward)
            Block(hidden, hidden, [2, 2], 0, p),
            Block(hidden, proj, [2, 2], 0, p),
            nn.Identity(),  # the mean over time (done in forward)
            nn.Linear(proj, classes),
        )

    def forward(self, hidden):
        x = hidden.transpose(1, 2)
        x = self.head[2](self.head[1](x))
        return self.head[4](x.mean(dim=2))


def randomise_bn(m, g):
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm1d):
            with torch.no_grad():
                mod.weight.uniform_(0.5, 1.5, generator=g)
                mod.bias.uniform_(-0.3, 0.3, generator=g)
                mod.running_mean.uniform_(-0.2, 0.2, generator=g)
                mod.running_var.uniform_(0.5, 2.0, generator=g)
                mod.num_batches_tracked.fill_(7)


def main():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    out = {}
    pick = PickHead(6, 3, 3, 0.0)
    event = EventHead(6, 5, 4, 0.0)
    randomise_bn(pick, g)
    randomise_bn(event, g)
    for k, v in pick.state_dict().items():
        out["pick." + k] = v.clone()
    for k, v in event.state_dict().items():
        out["event." + k] = v.clone()
    hidden = torch.randn(2, 11, 6, generator=g)
    wave = torch.randn(2, 3, 43, generator=g)
    pick_up = torch.randn(2, 43, 3, generator=g)
    ehidden = torch.randn(2, 80, 6, generator=g)
    event_up = torch.randn(2, 4, generator=g)
    out.update({"input.hidden": hidden, "input.wave": wave, "input.pick_up": pick_up,
                "input.event_hidden": ehidden, "input.event_up": event_up})
    with torch.no_grad():
        pick.eval()
        event.eval()
        out["eval.pick_logits"] = pick(hidden, wave)
        out["eval.event_logits"] = event(ehidden)
    pick.train()
    event.train()
    h = hidden.clone().requires_grad_(True)
    logits = pick(h, wave)
    (logits * pick_up).sum().backward()
    out["train.pick_logits"] = logits.detach()
    out["grad.pick.hidden"] = h.grad
    for k, p in pick.named_parameters():
        out["grad.pick." + k] = p.grad
    eh = ehidden.clone().requires_grad_(True)
    logits = event(eh)
    (logits * event_up).sum().backward()
    out["train.event_logits"] = logits.detach()
    out["grad.event.hidden"] = eh.grad
    for k, p in event.named_parameters():
        out["grad.event." + k] = p.grad
    out = {k: v.contiguous() for k, v in out.items()}
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "seislm_heads.safetensors")
    save_file(out, path)
    print("wrote", os.path.normpath(path), len(out), "tensors")


if __name__ == "__main__":
    main()
