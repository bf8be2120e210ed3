"""The client tasks (``task``) a run can name, and what each asks of a run config.

Each line of :data:`TASKS` is a task's registry entry: the :class:`~fedssl.clients.ClientTask`
subclass it builds (imported only when the task runs) and the tags its config checks read:

``modality``
    ``"image"``, ``"audio"`` or ``"video"``: the datasets and models it takes (their
    ``modality`` / ``modalities`` tags).
``model_kinds``
    The ``kind`` tags of the models it trains (``"backbone"``, ``"classifier"``).
``trains_ssl_method``
    Whether it trains a self-supervised method (``ssl-method``, of its modality).
``check``
    Optional: ``(cfg) -> list[str]``, the task's own rules beyond the tags, torch-free.

:func:`check_task` asks them (``fedssl.compose.validate`` calls it); a test keeps each
task class's ``name``, ``modality``, ``model_kinds`` and ``trains_ssl_method`` equal to its
line here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fedssl.catalogue.datasets import DATASET_REGISTRY
from fedssl.catalogue.models import MODELS, REPOPT_MODES, SSL_REGISTRY
from fedssl.common.registry import Registry

if TYPE_CHECKING:
    from fedssl.clients.base import ClientTask
    from fedssl.config import RunConfig

__all__ = [
    "CTP_IMAGE_SIZES",
    "TASKS",
    "accepts_model",
    "check_image_classification",
    "check_task",
    "check_video_ssl",
    "get_task",
]


def check_image_classification(cfg: RunConfig) -> list[str]:
    """``repopt-mode`` must exist, and ``repopt-scales`` initialises only a plain RepOpt model."""
    wrong = []
    if cfg.repopt_mode not in REPOPT_MODES:
        wrong.append(f"repopt-mode={cfg.repopt_mode!r} (choose one of "
                     f"{', '.join(REPOPT_MODES)})")
    is_repopt = MODELS.tags(cfg.model).get("family") == "repopt"
    if cfg.repopt_scales and not (is_repopt and cfg.repopt_mode == "target"):
        wrong.append(f"repopt-scales={cfg.repopt_scales!r} initialises a plain RepOpt "
                     f"model; it needs a RepOpt model with repopt-mode=target, got "
                     f"model={cfg.model!r}, repopt-mode={cfg.repopt_mode!r}")
    return wrong


#: Sides of square clips CtP has settings for (``fedssl.models.ctp.CTP_CONFIGS``).
CTP_IMAGE_SIZES: tuple[int, ...] = (32, 112)


def check_video_ssl(cfg: RunConfig) -> list[str]:
    """CtP needs a backbone in its pretraining geometry and clips of a size it has settings
    for; a clip must fit in the dataset's videos (its ``frames`` tag: a number, or the
    run-config key that sets it)."""
    wrong = []
    frames = DATASET_REGISTRY.tags(cfg.dataset).get("frames")
    key = frames if isinstance(frames, str) else ""
    if key:
        frames = cfg.to_run_config()[key]
    if frames and cfg.clip_frames > frames:
        fix = f" (decoded with {key}={frames}; raise it)" if key else ""
        wrong.append(f"clip-frames={cfg.clip_frames} is longer than the {frames}-frame videos "
                     f"of dataset={cfg.dataset!r}{fix}")
    if cfg.ssl_method == "ctp":
        if MODELS.tags(cfg.model).get("geometry") != "ctp":
            ctp_models = MODELS.names(geometry="ctp")
            wrong.append(f"ssl-method='ctp' tracks patches on a finer feature map: use a model "
                         f"in CtP's geometry ({', '.join(ctp_models)}), not model={cfg.model!r}")
        if cfg.image_size not in CTP_IMAGE_SIZES:
            wrong.append(f"ssl-method='ctp' has settings for image-size "
                         f"{' or '.join(map(str, CTP_IMAGE_SIZES))}, not {cfg.image_size}")
    return wrong


TASKS: Registry[Any] = Registry("task")
TASKS.declare("audio-ssl", "fedssl.clients.audio_ssl:AudioSSLTask",
              modality="audio", model_kinds=("backbone",), trains_ssl_method=True)
TASKS.declare("image-classification",
              "fedssl.clients.image_classification:ImageClassificationTask",
              modality="image", model_kinds=("classifier", "backbone"),
              trains_ssl_method=False, check=check_image_classification)
TASKS.declare("image-ssl", "fedssl.clients.image_ssl:ImageSSLTask",
              modality="image", model_kinds=("backbone",), trains_ssl_method=True)
TASKS.declare("video-ssl", "fedssl.clients.video_ssl:VideoSSLTask",
              modality="video", model_kinds=("backbone",), trains_ssl_method=True,
              check=check_video_ssl)


def accepts_model(task: str, model: str) -> bool:
    """Whether model ``model`` is of task ``task``'s modality and one of its model kinds."""
    if model not in MODELS:
        return False
    wants, tags = TASKS.tags(task), MODELS.tags(model)
    return (tags["kind"] in wants.get("model_kinds", ("backbone",))
            and wants["modality"] in tags["modalities"])


def check_task(cfg: RunConfig) -> list[str]:
    """What in ``cfg`` does not fit its task (empty when all does), from the tags alone.

    The dataset and the model must be of the task's ``modality`` and the model of one of its
    ``model_kinds``; a task that trains an SSL method needs one of its modality; then the
    task's own ``check``. Each entry names the key, the value and what would fit.
    """
    wants = TASKS.tags(cfg.task)
    modality = wants["modality"]
    wrong = []
    data_modality = DATASET_REGISTRY.tags(cfg.dataset)["modality"]
    if data_modality != modality:
        fits = ", ".join(DATASET_REGISTRY.names(modality=modality))
        wrong.append(f"dataset={cfg.dataset!r} is {data_modality} (needs one of {fits})")
    if not accepts_model(cfg.task, cfg.model):
        tags = MODELS.tags(cfg.model)
        fitting = [n for n in MODELS if accepts_model(cfg.task, n)]
        wrong.append(f"model={cfg.model!r} is an {'/'.join(tags['modalities'])} "
                     f"{tags['kind']} (needs one of {', '.join(fitting)})")
    if wants.get("trains_ssl_method"):
        fits = SSL_REGISTRY.names(modalities=modality)
        if cfg.ssl_method not in fits:
            tags = SSL_REGISTRY.tags(cfg.ssl_method)
            wrong.append(f"ssl-method={cfg.ssl_method!r} is {tags['objective']} SSL for "
                         f"{'/'.join(tags['modalities'])} (needs one of {', '.join(fits)})")
    if check := wants.get("check"):
        wrong.extend(check(cfg))
    return wrong


def get_task(name: str) -> ClientTask:
    """The task registered under ``name`` (one shared instance per process, so caches persist;
    the first call imports the task's module).

    Raises
    ------
    ValueError
        If ``name`` is unknown; the message lists the valid tasks.
    """
    if name not in _INSTANCES:
        _INSTANCES[name] = TASKS.get(name)()
    return _INSTANCES[name]


_INSTANCES: dict[str, ClientTask] = {}
