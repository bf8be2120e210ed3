"""What a run leaves on disk: config, long-format metrics, summary, plots, checkpoints, W&B."""

from fedssl.tracking.checkpoint import (
    CHECKPOINT_FILE,
    ROUND_CHECKPOINT_DIR,
    CheckpointError,
    has_checkpoint,
    list_round_models,
    load_checkpoint,
    load_round_model,
    load_tensors,
    load_tensors_metadata,
    round_model_path,
    save_checkpoint,
    save_round_model,
    save_tensors,
)
from fedssl.tracking.recorder import METRIC_COLUMNS, RunRecorder
from fedssl.tracking.wandb_sink import WandbSink

__all__ = [
    "CHECKPOINT_FILE",
    "METRIC_COLUMNS",
    "ROUND_CHECKPOINT_DIR",
    "CheckpointError",
    "RunRecorder",
    "WandbSink",
    "has_checkpoint",
    "list_round_models",
    "load_checkpoint",
    "load_round_model",
    "load_tensors",
    "load_tensors_metadata",
    "round_model_path",
    "save_checkpoint",
    "save_round_model",
    "save_tensors",
]
