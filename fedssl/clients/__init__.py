"""What a client does, one task per file, each with its entry in :data:`TASKS`.

A task builds the federated model, trains it on one partition given the round's instructions
and evaluates it (locally, and centrally on the server). Strategies' client halves are
:class:`~fedssl.clients.instructions.LocalRule` s beside the tasks (FedProx's proximal term,
FedRepOpt's gradient masks, FedVSSL's partial loading). The tasks' entries are declared in
:mod:`fedssl.catalogue.tasks`; importing this package registers the rules. This package must
not import ``flwr``.
"""

from fedssl.clients import partial, proximal, repopt
from fedssl.clients.audio_ssl import AudioSSLTask
from fedssl.clients.base import ClientTask, seed_global
from fedssl.clients.image_classification import ImageClassificationTask
from fedssl.clients.image_ssl import ImageSSLTask
from fedssl.clients.instructions import LOCAL_RULES, LocalRule, RoundInstructions
from fedssl.clients.registry import TASKS, get_task, register_task

# The client halves register themselves on import.
_RULES = (partial, proximal, repopt)

__all__ = [
    "LOCAL_RULES",
    "TASKS",
    "AudioSSLTask",
    "ClientTask",
    "ImageClassificationTask",
    "ImageSSLTask",
    "LocalRule",
    "RoundInstructions",
    "get_task",
    "register_task",
    "seed_global",
]
