"""Augmented log-mel views of a waveform batch, for audio self-supervised learning.

Each view is drawn independently per clip: a circular time shift, a random gain, mixing with
another clip of the batch at a random SNR (``torchaudio.functional.add_noise``; COLA and
BYOL-A mix in background audio the same way), then the log-mel front end and SpecAugment
masking (``torchaudio.transforms.SpecAugment``). Everything runs batched on the training
device; randomness comes from torch's global RNG, which the client seeds per round.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio.functional as AF
from torch import nn

from fedssl.models.audio_frontend import LogMelSettings, LogMelSpectrogram, SpecAugmentView

__all__ = ["AudioViewOptions", "AudioViews", "random_time_shift"]


@dataclass(frozen=True)
class AudioViewOptions:
    """Augmentation strengths of one view.

    Attributes
    ----------
    max_shift
        Largest circular time shift, as a fraction of the clip (0 disables it).
    gain_db
        Gain drawn uniformly from ``[-gain_db, +gain_db]`` dB.
    mix_prob
        Probability that a clip gets another clip of the batch mixed in as background.
    mix_snr_db
        Range of the SNR of that mixing, in dB.
    time_masks, time_width, freq_masks, freq_width
        SpecAugment: number of masks and their largest widths (frames, mel bands).
    """

    max_shift: float = 0.2
    gain_db: float = 6.0
    mix_prob: float = 0.5
    mix_snr_db: tuple[float, float] = (5.0, 20.0)
    time_masks: int = 2
    time_width: int = 10
    freq_masks: int = 2
    freq_width: int = 16

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_shift < 1.0:
            raise ValueError(f"max_shift must be in [0, 1); got {self.max_shift}")
        if not 0.0 <= self.mix_prob <= 1.0:
            raise ValueError(f"mix_prob must be in [0, 1]; got {self.mix_prob}")
        if self.gain_db < 0 or self.mix_snr_db[0] > self.mix_snr_db[1]:
            raise ValueError(f"need gain_db >= 0 and an ordered mix_snr_db; got {self}")


def random_time_shift(waveforms: torch.Tensor, max_shift: float) -> torch.Tensor:
    """Roll each clip of ``(B, L)`` by its own random offset in ``[-max_shift·L, max_shift·L]``."""
    batch, length = waveforms.shape
    limit = int(max_shift * length)
    if limit == 0:
        return waveforms
    shifts = torch.randint(-limit, limit + 1, (batch, 1), device=waveforms.device)
    positions = torch.arange(length, device=waveforms.device).unsqueeze(0)
    return waveforms.gather(1, (positions - shifts) % length)


class AudioViews(nn.Module):
    """``(B, L)`` waveforms -> ``num_views`` augmented log-mels, each ``(B, 1, T, n_mels)``.

    Parameters
    ----------
    settings
        Log-mel front end (sample rate, window, hop), e.g. ``AUDIO_FRONTENDS["vggsound"]``.
    options
        Augmentation strengths.
    num_views
        Views per clip (2 for SimCLR / Barlow Twins, 1 for clip-order prediction).
    """

    def __init__(self, settings: LogMelSettings, options: AudioViewOptions | None = None,
                 *, num_views: int = 2) -> None:
        super().__init__()
        if num_views < 1:
            raise ValueError(f"num_views must be >= 1; got {num_views}")
        self.options = options or AudioViewOptions()
        self.num_views = num_views
        self.log_mel = LogMelSpectrogram(settings)
        self.spec_augment = SpecAugmentView(
            time_masks=self.options.time_masks, time_width=self.options.time_width,
            freq_masks=self.options.freq_masks, freq_width=self.options.freq_width)

    def waveform_view(self, waveforms: torch.Tensor) -> torch.Tensor:
        """The waveform part of one view: shift, gain and background mixing."""
        opt = self.options
        batch = waveforms.shape[0]
        x = random_time_shift(waveforms, opt.max_shift)
        gain_db = (torch.rand(batch, 1, device=x.device) * 2 - 1) * opt.gain_db
        x = x * 10 ** (gain_db / 20)
        if opt.mix_prob > 0 and batch > 1:
            # The background of clip i is clip i+1 (another utterance, never the clip itself).
            background = x.roll(1, dims=0)
            low, high = opt.mix_snr_db
            snr = low + torch.rand(batch, device=x.device) * (high - low)
            mixed = AF.add_noise(x, background, snr)
            chosen = torch.rand(batch, 1, device=x.device) < opt.mix_prob
            x = torch.where(chosen, mixed, x)
        return x

    @torch.no_grad()
    def forward(self, waveforms: torch.Tensor) -> list[torch.Tensor]:
        views = []
        for _ in range(self.num_views):
            spec = self.log_mel(self.waveform_view(waveforms))
            views.append(self.spec_augment(spec).unsqueeze(1))
        return views
