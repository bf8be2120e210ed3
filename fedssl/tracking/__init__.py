"""What a run leaves on disk: config, long-format metrics, summary, plots, checkpoints, W&B."""

from fedssl.tracking.checkpoint import CHECKPOINT_FILE, load_checkpoint, save_checkpoint
from fedssl.tracking.recorder import METRIC_COLUMNS, RunRecorder
from fedssl.tracking.wandb_sink import WandbSink

__all__ = [
    "CHECKPOINT_FILE",
    "METRIC_COLUMNS",
    "RunRecorder",
    "WandbSink",
    "load_checkpoint",
    "save_checkpoint",
]
