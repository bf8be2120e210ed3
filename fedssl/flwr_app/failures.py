"""How many of a round's clients were lost, and when that is too many to go on.

A round loses a client when its reply is an error (the ClientApp raised, its Ray actor died,
its SuperNode stopped heartbeating), is left out as unusable (non-finite or misshapen arrays),
or never arrives within ``round-timeout``. A few lost clients are what the strategy's
``min-train-nodes`` is for; losing more than ``max-failed-fraction`` of a round's sampled
clients means the federation itself is broken. The case that motivated this: in Flower 1.41's
simulation a ``kill -9`` (or the OOM killer) of one ``ray::ClientAppActor`` leaves the dead
actor in Flower's actor pool, which keeps handing it messages, so every later round loses
most of its clients while the run would still end "completed". Flower offers no setting to
restart the actor (its Ray backend creates actors with only ``num_cpus``/``num_gpus``), so
the ServerApp stops the run instead, naming the round, the count and the error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["FailureTally", "TooManyFailures", "failure_message", "too_many_failures"]

# Substrings of the error reason Flower's Ray backend reports for a dead actor
# (ray.exceptions.ActorDiedError: "The actor died unexpectedly ..." / "The actor is dead ...").
_ACTOR_DIED = ("actordiederror", "actor died", "actor is dead")
# How much of each distinct reason the message quotes.
_REASON_CHARS = 240


class TooManyFailures(RuntimeError):
    """A round lost more than ``max-failed-fraction`` of its sampled clients; ``round`` is
    that round."""

    round: int = 0


def too_many_failures(lost: int, sampled: int, max_fraction: float) -> bool:
    """Whether losing ``lost`` of ``sampled`` clients is more than ``max_fraction`` of them.

    A round that sampled nobody has lost nobody; ``max_fraction=1.0`` never stops a run and
    ``0.0`` stops it at the first lost client.
    """
    if sampled <= 0 or lost <= 0:
        return False
    return lost > max_fraction * sampled


def failure_message(rnd: int, lost: int, sampled: int, max_fraction: float,
                    reasons: list[str], run_dir: str = "<run directory>") -> str:
    """One paragraph: the round, the count, the distinct errors (most frequent first) and what
    to do."""
    counted = Counter(r.strip() for r in reasons if r.strip())
    errors = "; ".join(
        f"{reason[:_REASON_CHARS]}{'...' if len(reason) > _REASON_CHARS else ''}"
        f"{f' (x{n})' if n > 1 else ''}"
        for reason, n in counted.most_common())
    text = (f"round {rnd}: {lost} of {sampled} sampled clients failed, more than "
            f"max-failed-fraction={max_fraction:g} allows; errors: {errors or 'none reported'}")
    if any(marker in reason.lower() for reason in counted for marker in _ACTOR_DIED):
        return text + (". A Ray ClientApp actor died (killed, or out of memory): Flower's "
                       "simulation does not replace it and keeps sending it messages, so the "
                       "rounds after it lose its clients too. The checkpoint of this round is "
                       f"kept: continue with resume-from={run_dir} (a new simulation "
                       "starts every actor afresh)")
    return text + (". The checkpoint of this round is kept: once the cause is fixed, continue "
                   f"with resume-from={run_dir}")


@dataclass
class FailureTally:
    """Per round: how many clients were sampled for training, how many replied usably and why
    the others did not."""

    sampled: dict[int, int] = field(default_factory=dict)
    valid: dict[int, int] = field(default_factory=dict)
    reasons: dict[int, list[str]] = field(default_factory=dict)

    def sent(self, rnd: int, count: int) -> None:
        self.sampled[rnd] = count
        self.valid[rnd] = 0
        self.reasons[rnd] = []

    def replied(self, rnd: int) -> None:
        self.valid[rnd] = self.valid.get(rnd, 0) + 1

    def failed(self, rnd: int, reason: str) -> None:
        self.reasons.setdefault(rnd, []).append(reason)

    def lost(self, rnd: int) -> int:
        """Sampled clients without a usable reply: errors, left-out replies, no reply."""
        return max(self.sampled.get(rnd, 0) - self.valid.get(rnd, 0),
                   len(self.reasons.get(rnd, [])))

    def by_round(self) -> dict[int, int]:
        """Lost clients per round, for the rounds that lost any."""
        return {rnd: n for rnd in sorted(self.sampled) if (n := self.lost(rnd))}

    def check(self, rnd: int, max_fraction: float, *, timeout: float | None = None,
              run_dir: str = "<run directory>") -> None:
        """Raise :class:`TooManyFailures` when round ``rnd`` lost too many clients."""
        lost, sampled = self.lost(rnd), self.sampled.get(rnd, 0)
        if not too_many_failures(lost, sampled, max_fraction):
            return
        reasons = list(self.reasons.get(rnd, []))
        silent = lost - len(reasons)
        if silent > 0:
            reasons += [f"no reply within round-timeout={timeout:g}s" if timeout
                        else "no reply"] * silent
        error = TooManyFailures(failure_message(rnd, lost, sampled, max_fraction, reasons,
                                                run_dir))
        error.round = rnd
        raise error
