"""What a client does, one task per file; ``TASKS`` maps the run-config ``task`` name to it.

A task knows how to build the federated model, train it locally on one partition, and (on the
server) evaluate the global model centrally. New modalities (audio, video, audio-visual) are
one more file and one more registry line.
"""

from fedssl.clients.audio_ssl import AudioSSLTask
from fedssl.clients.base import ClientTask
from fedssl.clients.image_classification import ImageClassificationTask
from fedssl.clients.image_ssl import ImageSSLTask

TASKS: dict[str, type[ClientTask]] = {
    "image-ssl": ImageSSLTask,
    "image-classification": ImageClassificationTask,
    "audio-ssl": AudioSSLTask,
}


def get_task(name: str) -> ClientTask:
    """The task registered under ``name`` (one shared instance per process, so caches persist)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    if name not in _INSTANCES:
        _INSTANCES[name] = TASKS[name]()
    return _INSTANCES[name]


_INSTANCES: dict[str, ClientTask] = {}

__all__ = [
    "TASKS",
    "AudioSSLTask",
    "ClientTask",
    "ImageClassificationTask",
    "ImageSSLTask",
    "get_task",
]
