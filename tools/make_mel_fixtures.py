#!/usr/bin/env python3
"""Reference outputs for the dsp tests (tests/dsp_reference.rs), computed with librosa.

    pip install librosa numpy      # librosa 0.11.0, numpy 2.x were used
    python tools/make_mel_fixtures.py        # writes tests/fixtures/mel_*.npy

torchaudio references come from tools/make_mel_torchaudio_fixtures.py (torch 2.11 + torchaudio
2.11; torchaudio 2.11 does not import next to torch 2.15). torchaudio's MelSpectrogram (htk, norm=None, reflect) equals case
`spec_a` below up to its sample_rate // 2 frequency grid (identical for even rates).
All arrays are float32, C order. Keep the total small (< 300 KB).
"""
import os

import librosa
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
SR = 100


def save(name, a):
    a = np.ascontiguousarray(np.asarray(a, dtype=np.float32))
    np.save(os.path.join(OUT, f"mel_{name}.npy"), a)


def signals():
    t = np.arange(1001) / SR  # odd length
    # linear chirp 1 -> 40 Hz over 10 s, slowly modulated
    chirp = np.sin(2 * np.pi * (1.0 * t + 0.5 * 39.0 / 10.0 * t**2)) * (1 + 0.3 * np.cos(0.7 * t))
    noise = np.random.default_rng(0).standard_normal(777)  # odd length
    return {"chirp": chirp.astype(np.float32), "noise": noise.astype(np.float32)}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, x in signals().items():
        save(f"sig_{name}", x)
        # A: magnitude, periodic Hann, centred, reflect
        s = librosa.stft(x, n_fft=64, hop_length=16, window="hann", center=True, pad_mode="reflect")
        save(f"stft_a_{name}", np.abs(s))
        # B: power, periodic Hamming of 50 samples in a 60-point frame (2^2*3*5), zero padding
        s = librosa.stft(x, n_fft=60, hop_length=15, win_length=50, window="hamming",
                         center=True, pad_mode="constant")
        save(f"stft_b_{name}", np.abs(s) ** 2)
        # C: not centred, symmetric Hann (given as an array)
        w = librosa.filters.get_window("hann", 50, fftbins=False)
        s = librosa.stft(x, n_fft=50, hop_length=20, window=w, center=False)
        save(f"stft_c_{name}", np.abs(s))
        # mel A: torchaudio MelSpectrogram defaults (htk, no norm, reflect, power 2)
        m = librosa.feature.melspectrogram(y=x, sr=SR, n_fft=64, hop_length=16, window="hann",
                                           center=True, pad_mode="reflect", power=2.0,
                                           n_mels=16, htk=True, norm=None)
        save(f"spec_a_{name}", m)
        save(f"db_a_{name}", librosa.power_to_db(m, ref=1.0, amin=1e-10, top_db=80.0))
        # mel B: Slaney scale and area norm, magnitude, f_min/f_max, zero padding, n_fft 90
        m = librosa.feature.melspectrogram(y=x, sr=SR, n_fft=90, hop_length=25, window="hann",
                                           center=True, pad_mode="constant", power=1.0,
                                           n_mels=20, fmin=2.0, fmax=40.0, htk=False,
                                           norm="slaney")
        save(f"spec_b_{name}", m)
    for htk in (True, False):
        for norm in (None, "slaney"):
            fb = librosa.filters.mel(sr=SR, n_fft=64, n_mels=12, fmin=0.5, fmax=45.0,
                                     htk=htk, norm=norm)
            save(f"fb_{'htk' if htk else 'slaney'}_{'slaney' if norm else 'none'}", fb)

    # Mel images (docs/dsp.md): N=2, C=3, T=1510 -> 32x48; n_fft = 2*32, hop = round(1510/48) = 31,
    # F = 1 + 1510 // 31 = 49 frames resampled to 48 columns.
    rng = np.random.default_rng(1)
    n, c, t, h, wd = 2, 3, 1510, 32, 48
    tt = np.arange(t) / SR
    waves = rng.standard_normal((n, c, t)) * 0.5
    for i in range(n):
        for j in range(c):
            f0 = 2.0 + 3 * i + j
            waves[i, j] += np.sin(2 * np.pi * (f0 * tt + 1.5 * tt**2 / 15.0)) * np.exp(-((tt - 7) ** 2) / 8)
    waves = waves.astype(np.float32)
    save("image_waves", waves)
    hop = int(round(t / wd))
    assert hop == 31

    def logmel(x, db):
        m = librosa.feature.melspectrogram(y=x, sr=SR, n_fft=2 * h, hop_length=hop, window="hann",
                                           center=True, pad_mode="reflect", power=2.0,
                                           n_mels=h, htk=True, norm=None)
        if db:
            return librosa.power_to_db(m, ref=1.0, amin=1e-10, top_db=80.0)
        return np.log(np.maximum(m, 1e-10))

    def resample(img):
        f = img.shape[1]
        pos = np.arange(wd, dtype=np.float32) * np.float32((f - 1) / (wd - 1))
        return np.stack([np.interp(pos, np.arange(f), row) for row in img])

    db_minmax = np.zeros((n, c, h, wd), np.float32)
    ln_z = np.zeros((n, c, h, wd), np.float32)
    for i in range(n):
        for j in range(c):
            a = resample(logmel(waves[i, j], True))
            db_minmax[i, j] = (a - a.min()) / (a.max() - a.min())
            b = resample(logmel(waves[i, j], False))
            ln_z[i, j] = (b - b.mean()) / (b.std() + 1e-6)
    save("image_db_minmax", db_minmax)
    save("image_ln_zscore_avg", ln_z.mean(axis=1, keepdims=True))


if __name__ == "__main__":
    main()
