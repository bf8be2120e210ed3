"""Render the embedded ``spoken-digits`` audio dataset with the espeak-ng speech synthesiser.

Each "speaker" is one espeak-ng voice variant (its timbre: formants, breathiness, vibrato)
with one of eight English accents; the speakers are split 45 / 15 into train and test, so no
test voice is ever heard in training. Every speaker says each digit, zero to nine, three
times at a random speed and pitch. The clips are resampled from espeak-ng's 22.05 kHz to
16 kHz, trimmed to the voiced part and peak-normalised, then concatenated per split (with
silence between them) into one Ogg Opus file; ``metadata.csv`` gives every clip's sample
range and attributes. Background noise is mixed in when the data is loaded
(:mod:`fedssl.datasets.spoken_digits`), from a seed per clip, so the noisy dataset is fixed
while the shipped files stay small.

Usage (needs ``espeak-ng`` on PATH, e.g. ``apt-get install espeak-ng``)::

    python scripts/make_spoken_digits.py            # writes fedssl/datasets/data/spoken_digits
    python scripts/make_spoken_digits.py --out DIR

The audio is deterministic for a given espeak-ng version (recorded in ``README.txt``); only
the Ogg container's stream serial number differs between runs.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch
import torchaudio
from tqdm import tqdm

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
    "en-029", "en-us-nyc",
)
NUM_SPEAKERS = {"train": 45, "test": 15}
RENDITIONS = 3
SPEED_WPM = (120, 220)  # espeak-ng -s
PITCH = (20, 80)  # espeak-ng -p, 0..99
SAMPLE_RATE = 16_000
GAP_SECONDS = 0.1  # silence between clips in the concatenated file
TRIM_THRESHOLD = 0.02  # relative to the clip's peak
PEAK = 0.9
SEED = 0
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "fedssl" / "datasets" / "data" / (
    "spoken_digits"
)


def espeak_variants() -> list[str]:
    """Names of the installed espeak-ng voice variants (the ``!v/<name>`` files)."""
    listing = subprocess.run(
        ["espeak-ng", "--voices=variant"], check=True, capture_output=True, text=True
    ).stdout.splitlines()[1:]
    return sorted(line.split()[4].removeprefix("!v/") for line in listing if line.strip())


def render(word: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """One utterance as float32 mono at SAMPLE_RATE, trimmed to its voiced part."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word],
        check=True,
        capture_output=True,
    ).stdout
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
    audio = torchaudio.functional.resample(torch.from_numpy(audio), rate, SAMPLE_RATE).numpy()
    loud = np.flatnonzero(np.abs(audio) > TRIM_THRESHOLD * np.abs(audio).max())
    audio = audio[loud[0] : loud[-1] + 1]
    return (PEAK * audio / np.abs(audio).max()).astype(np.float32)


def build(out: Path) -> pd.DataFrame:
    rng = np.random.default_rng(SEED)
    variants = espeak_variants()
    total = sum(NUM_SPEAKERS.values())
    if len(variants) < total:
        raise SystemExit(f"espeak-ng has {len(variants)} voice variants; {total} are needed")
    chosen = [variants[i] for i in rng.permutation(len(variants))[:total]]
    speakers = [(name, ACCENTS[i % len(ACCENTS)]) for i, name in enumerate(chosen)]
    splits = {"train": speakers[: NUM_SPEAKERS["train"]], "test": speakers[NUM_SPEAKERS["train"]:]}
    gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), dtype=np.float32)
    rows = []
    out.mkdir(parents=True, exist_ok=True)
    progress = tqdm(total=total * len(DIGITS) * RENDITIONS, desc="espeak-ng", unit="clip",
                    mininterval=2.0)
    for split, members in splits.items():
        pieces, position = [], 0
        for speaker_id, (variant, accent) in enumerate(members):
            for digit, word in enumerate(DIGITS):
                for take in range(RENDITIONS):
                    speed = int(rng.integers(SPEED_WPM[0], SPEED_WPM[1] + 1))
                    pitch = int(rng.integers(PITCH[0], PITCH[1] + 1))
                    clip = render(word, f"{accent}+{variant}", speed, pitch)
                    rows.append({
                        "split": split, "start": position, "stop": position + len(clip),
                        "label": digit, "word": word, "speaker": f"{split}-{speaker_id:02d}",
                        "variant": variant, "accent": accent, "speed": speed, "pitch": pitch,
                        "take": take,
                    })
                    pieces += [clip, gap]
                    position += len(clip) + len(gap)
                    progress.update()
        sf.write(out / f"{split}.opus", np.concatenate(pieces), SAMPLE_RATE,
                 format="OGG", subtype="OPUS")
    progress.close()
    table = pd.DataFrame(rows)
    table.to_csv(out / "metadata.csv", index=False)
    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
    version = version.split("Data at")[0].strip()  # the data path differs between machines
    (out / "README.txt").write_text(
        "Spoken digits rendered by scripts/make_spoken_digits.py with\n"
        f"{version}\nand encoded as Ogg Opus at {SAMPLE_RATE} Hz by libsndfile "
        f"{sf.__libsndfile_version__}.\n"
    )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not on PATH; install it (e.g. apt-get install espeak-ng)")
    table = build(args.out)
    sizes = {p.name: p.stat().st_size for p in sorted(args.out.iterdir())}
    seconds = (table["stop"] - table["start"]).sum() / SAMPLE_RATE
    print(f"{len(table)} clips, {table['speaker'].nunique()} speakers, {seconds:.0f} s of speech")
    print("files:", ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in sizes.items()))


if __name__ == "__main__":
    main()
