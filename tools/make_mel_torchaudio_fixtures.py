#!/usr/bin/env python3
"""torchaudio reference outputs for tests/dsp_reference.rs (beside the librosa ones).

    pip install "torch==2.11.*" "torchaudio==2.11.*" numpy   # torchaudio 2.11 needs torch 2.11
    python tools/make_mel_torchaudio_fixtures.py                # writes tests/fixtures/mel_ta_*.npy

Reads the signals written by tools/make_mel_fixtures.py (mel_sig_*.npy) and computes
torchaudio.transforms.MelSpectrogram with its defaults (periodic Hann, centred, reflect padding,
power 2, HTK mel scale, no area normalisation, f_max = sample_rate // 2) for n_fft 64, hop 16,
16 mels at 100 Hz, and AmplitudeToDB(stype="power", top_db=80), in float64, saved as float32.
Used 2026-11-26 with torch 2.11.0 and torchaudio 2.11.0.
"""
import os

import numpy as np
import torch
import torchaudio

DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")

for name in ["chirp", "noise"]:
    x = torch.from_numpy(np.load(os.path.join(DIR, f"mel_sig_{name}.npy"))).double()
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=100, n_fft=64, hop_length=16, n_mels=16).double()
    m = mel(x)
    db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=80.0).double()(m)
    np.save(os.path.join(DIR, f"mel_ta_spec_a_{name}.npy"), np.ascontiguousarray(m.numpy(), dtype=np.float32))
    np.save(os.path.join(DIR, f"mel_ta_db_a_{name}.npy"), np.ascontiguousarray(db.numpy(), dtype=np.float32))
    print(name, tuple(m.shape))
