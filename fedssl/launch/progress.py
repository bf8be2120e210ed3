"""A round progress bar that shares the terminal with the streamed Flower log.

Shown by ``fedssl run``, ``fedssl experiment`` (one bar per variant) and ``fedssl deploy
submit`` while :meth:`fedssl.launch.flwr_cli.FlwrCli.run` streams the run's log.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

__all__ = ["RoundProgress"]


class RoundProgress:
    """tqdm bar over rounds; log lines go through ``tqdm.write`` so they do not tear the bar."""

    def __init__(self, total_rounds: int, *, quiet: bool = False, desc: str = "rounds") -> None:
        self.quiet = quiet
        # Without a terminal a redrawn bar is noise in a log file: the "[fedssl] round"
        # lines of the Flower log carry the same progress there.
        self.interactive = sys.stderr.isatty()
        self.bar = tqdm(total=total_rounds, desc=desc, unit="round", file=sys.stderr,
                        dynamic_ncols=True, disable=not self.interactive)

    def __enter__(self) -> RoundProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.close()

    def write(self, line: str) -> None:
        if not self.quiet or (not self.interactive and "[fedssl]" in line):
            self.bar.write(line, file=sys.stdout)

    def update(self, done: int, total: int) -> None:
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()
