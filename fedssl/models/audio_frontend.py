"""Audio front end: the log-mel spectrogram of Auditory SlowFast, with torchaudio.

AudioInceptionNeXt and AudioRepInceptionNeXt (Lau et al., 2023/2024) take the log-mel input
of the Auditory SlowFast code base: an STFT with n_fft 2048, a Hann window of ``window_ms``,
hop ``hop_ms``, zero ("constant") padding at both ends, the magnitude (power 1), 128 HTK mel
bands without normalisation, then ``log(mel + 1e-6)``, laid out (time, mel). The settings per
dataset are in :data:`AUDIO_FRONTENDS`. :class:`SpecAugmentView` masks bands and frames with
torchaudio's SpecAugment for self-supervised views, in the same (time, mel) layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio
from torch import nn

__all__ = ["AUDIO_FRONTENDS", "LogMelSettings", "LogMelSpectrogram", "SpecAugmentView"]


@dataclass(frozen=True)
class LogMelSettings:
    """STFT and mel settings of one dataset (times in milliseconds)."""

    sample_rate: int
    window_ms: float
    hop_ms: float
    n_fft: int = 2048
    n_mels: int = 128
    eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.sample_rate < 1 or self.window_ms <= 0 or self.hop_ms <= 0:
            raise ValueError(f"need sample_rate >= 1, window_ms > 0, hop_ms > 0; got "
                             f"{self.sample_rate}, {self.window_ms}, {self.hop_ms}")
        if self.win_length > self.n_fft:
            raise ValueError(f"window of {self.win_length} samples exceeds n_fft={self.n_fft}")

    @property
    def win_length(self) -> int:
        return round(self.window_ms * self.sample_rate / 1000)

    @property
    def hop_length(self) -> int:
        return round(self.hop_ms * self.sample_rate / 1000)

    def num_frames(self, num_samples: int) -> int:
        """Frames of a clip of ``num_samples`` (centred STFT: one per hop, plus one)."""
        return num_samples // self.hop_length + 1


AUDIO_FRONTENDS: dict[str, LogMelSettings] = {
    # VGG-Sound: 16 kHz, 20 ms window, 10 ms hop; 5.119 s clips give 512 frames.
    "vggsound": LogMelSettings(sample_rate=16000, window_ms=20, hop_ms=10),
    # EPIC-SOUNDS: 24 kHz, 10 ms window, 5 ms hop; 2.08 s clips give 417 frames (416 used).
    "epic-sounds": LogMelSettings(sample_rate=24000, window_ms=10, hop_ms=5),
}


class LogMelSpectrogram(nn.Module):
    """Waveform ``(..., samples)`` -> log-mel ``(..., frames, n_mels)`` (float32).

    Parameters
    ----------
    settings : LogMelSettings
        E.g. ``AUDIO_FRONTENDS["vggsound"]``.
    """

    def __init__(self, settings: LogMelSettings) -> None:
        super().__init__()
        self.settings = settings
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=settings.sample_rate,
            n_fft=settings.n_fft,
            win_length=settings.win_length,
            hop_length=settings.hop_length,
            n_mels=settings.n_mels,
            window_fn=torch.hann_window,
            power=1.0,
            center=True,
            pad_mode="constant",
            mel_scale="htk",
            norm=None,
        )

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        mel = self.mel(waveform.float())  # (..., n_mels, frames)
        return torch.log(mel + self.settings.eps).transpose(-1, -2)


class SpecAugmentView(nn.Module):
    """SpecAugment on a (..., time, mel) log-mel: masked frames and bands take the clip's mean.

    Wraps ``torchaudio.transforms.SpecAugment`` (which works on (..., freq, time)); filling
    with the mean rather than 0 keeps masks neutral for log values, which are mostly negative.

    Parameters
    ----------
    time_masks, time_width : int
        Number of time masks and their largest width in frames.
    freq_masks, freq_width : int
        Number of mel masks and their largest width in bands.
    """

    def __init__(self, *, time_masks: int = 2, time_width: int = 40, freq_masks: int = 2,
                 freq_width: int = 24) -> None:
        super().__init__()
        self.augment = torchaudio.transforms.SpecAugment(
            n_time_masks=time_masks, time_mask_param=time_width, n_freq_masks=freq_masks,
            freq_mask_param=freq_width, iid_masks=True, zero_masking=False)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        return self.augment(log_mel.transpose(-1, -2)).transpose(-1, -2)
