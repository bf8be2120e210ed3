"""Shared test setup."""

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # On a shared 2-core machine, two OpenMP threads competing with another busy process
    # make every op wait at barriers (steps ~50x slower); one thread keeps tests fast.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
