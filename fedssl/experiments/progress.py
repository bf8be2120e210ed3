"""A round progress bar that shares the terminal with the streamed Flower log."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

__all__ = ["RoundProgress"]


class RoundProgress:
    """tqdm bar over rounds; log lines go through ``tqdm.write`` so they do not tear the bar."""

    def __init__(self, total_rounds: int, *, quiet: bool = False, desc: str = "rounds") -> None:
        self.quiet = quiet
        self.bar = tqdm(total=total_rounds, desc=desc, unit="round", file=sys.stderr,
                        dynamic_ncols=True)

    def __enter__(self) -> RoundProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.close()

    def write(self, line: str) -> None:
        if not self.quiet:
            self.bar.write(line, file=sys.stdout)

    def update(self, done: int, total: int) -> None:
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()
