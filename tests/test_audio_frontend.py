"""The log-mel front end against a direct numpy computation, and SpecAugment's axes."""

import numpy as np
import pytest
import torch

from fedssl.models.audio_frontend import (
    AUDIO_FRONTENDS,
    LogMelSettings,
    LogMelSpectrogram,
    SpecAugmentView,
)


def direct_log_mel(signal: np.ndarray, s: LogMelSettings) -> np.ndarray:
    """Centred zero-padded STFT magnitude, HTK mel triangles (no norm), log(mel + eps)."""
    padded = np.pad(signal, s.n_fft // 2)
    n = np.arange(s.win_length)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / s.win_length)  # periodic Hann
    left = (s.n_fft - s.win_length) // 2
    full_window = np.zeros(s.n_fft)
    full_window[left:left + s.win_length] = window
    frames = [padded[t * s.hop_length: t * s.hop_length + s.n_fft] * full_window
              for t in range(len(signal) // s.hop_length + 1)]
    magnitude = np.abs(np.fft.rfft(np.stack(frames), axis=1))  # (frames, bins)

    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    points = 700.0 * (10 ** (np.linspace(0, mel(s.sample_rate / 2), s.n_mels + 2) / 2595) - 1)
    freqs = np.linspace(0, s.sample_rate / 2, s.n_fft // 2 + 1)
    bank = np.zeros((len(freqs), s.n_mels))
    for m in range(s.n_mels):
        rising = (freqs - points[m]) / (points[m + 1] - points[m])
        falling = (points[m + 2] - freqs) / (points[m + 2] - points[m + 1])
        bank[:, m] = np.maximum(0, np.minimum(rising, falling))
    return np.log(magnitude @ bank + s.eps)


@pytest.mark.parametrize("name", sorted(AUDIO_FRONTENDS))
def test_log_mel_matches_the_direct_computation(name):
    settings = AUDIO_FRONTENDS[name]
    rng = np.random.default_rng(0)
    t = np.arange(int(0.3 * settings.sample_rate)) / settings.sample_rate
    signal = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(len(t))
    ours = LogMelSpectrogram(settings)(torch.tensor(signal, dtype=torch.float64)).numpy()
    expected = direct_log_mel(signal, settings)
    assert ours.shape == (settings.num_frames(len(signal)), 128) == expected.shape
    np.testing.assert_allclose(ours, expected, atol=1e-3, rtol=1e-3)


def test_paper_clip_lengths_give_the_paper_frame_counts():
    vgg = AUDIO_FRONTENDS["vggsound"]
    assert (vgg.win_length, vgg.hop_length) == (320, 160)
    assert vgg.num_frames(round(5.119 * 16000)) == 512
    epic = AUDIO_FRONTENDS["epic-sounds"]
    assert (epic.win_length, epic.hop_length) == (240, 120)
    batch = LogMelSpectrogram(vgg)(torch.zeros(2, 16000))
    assert batch.shape == (2, 101, 128)
    assert torch.allclose(batch, torch.full_like(batch, float(np.log(1e-6))))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="n_fft"):
        LogMelSettings(sample_rate=48000, window_ms=50, hop_ms=10)
    with pytest.raises(ValueError, match="hop_ms"):
        LogMelSettings(sample_rate=16000, window_ms=20, hop_ms=0)


def test_spec_augment_masks_whole_frames_and_whole_bands():
    torch.manual_seed(0)
    log_mel = torch.randn(4, 200, 128)
    out = SpecAugmentView(time_masks=1, time_width=30, freq_masks=0, freq_width=0)(log_mel)
    assert out.shape == log_mel.shape
    changed = (out != log_mel)
    frames = changed.any(dim=2)  # (batch, time)
    assert frames.any()
    # A masked frame is masked across every mel band; no band-only masking happened.
    assert torch.equal(changed.all(dim=2), frames)
    out = SpecAugmentView(time_masks=0, time_width=0, freq_masks=1, freq_width=30)(log_mel)
    bands = (out != log_mel).any(dim=1)  # (batch, mel)
    assert bands.any() and torch.equal((out != log_mel).all(dim=1), bands)
