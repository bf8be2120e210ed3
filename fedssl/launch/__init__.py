"""Starting runs and following them: everything between a command line and Flower.

- :mod:`~fedssl.launch.overrides`: the one merge of defaults, experiment base and
  ``key=value`` overrides into a validated :class:`~fedssl.config.RunConfig`.
- :mod:`~fedssl.launch.local_superlink`: a private simulation SuperLink per ``fedssl run`` /
  ``fedssl experiment``, optionally on an existing Ray cluster (address checks included).
- :mod:`~fedssl.launch.flwr_cli`: the ``flwr`` CLI: submit, stream the log, read the real
  final status; the environment of Flower's processes. Simulation and deployment alike.
- :mod:`~fedssl.launch.progress`: the round progress bar.
- :mod:`~fedssl.launch.run_dir`: claiming a new run's directory, exclusively.
- :mod:`~fedssl.launch.report`: the headline results (or the failure) and the exit code.

Used by :mod:`fedssl.cli`, :mod:`fedssl.experiments` and :mod:`fedssl.deploy`. Importing the
package stays light (no torch, no Flower server code): ``resolve_config``, which validates
through :mod:`fedssl.compose` and so imports every registry, loads on first use.
"""

from typing import Any

from fedssl.launch.flwr_cli import (
    APP_DIR,
    FlwrCli,
    RunOutcome,
    flwr_bin,
    free_port,
    json_output,
    process_env,
)
from fedssl.launch.local_superlink import (
    Federation,
    LocalSuperLink,
    RayClusterUnreachable,
    check_ray_cluster,
    parse_ray_address,
)
from fedssl.launch.progress import RoundProgress
from fedssl.launch.report import report_outcome
from fedssl.launch.run_dir import claim_run_dir

__all__ = [
    "APP_DIR",
    "Federation",
    "FlwrCli",
    "LocalSuperLink",
    "RayClusterUnreachable",
    "RoundProgress",
    "RunOutcome",
    "check_ray_cluster",
    "claim_run_dir",
    "flwr_bin",
    "free_port",
    "json_output",
    "parse_ray_address",
    "process_env",
    "report_outcome",
    "resolve_config",
]


def __getattr__(name: str) -> Any:
    # PEP 562: `fedssl deploy superlink` and `fedssl --help` need no registry.
    if name == "resolve_config":
        from fedssl.launch.overrides import resolve_config

        return resolve_config
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
