"""The keys of the messages server and clients exchange: the one module both sides import.

A strategy sends its instructions under these keys (Flower's own pattern: FedProx puts
``proximal-mu`` into the train config); the client-side half that consumes each one lives in
:mod:`fedssl.clients.local_rules`. Replies carry their metrics under :data:`METRICS`.
"""

__all__ = [
    "ARRAYS",
    "CONFIG",
    "GRAD_SCALES",
    "IDENTITY_METRICS",
    "LOCAL_ARRAYS",
    "METRICS",
    "NUM_EXAMPLES",
    "NUM_PARTITIONS",
    "PARTIAL_LOCAL_ARRAYS_USED",
    "PARTITION_ID",
    "PROXIMAL_MU",
    "SERVER_ROUND",
]

# Records of a message's RecordDict (Flower's FedAvg uses "arrays" and "config").
ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"

# Train config entries.
SERVER_ROUND = "server-round"  # Flower's strategies set it in every train/evaluate config
PROXIMAL_MU = "proximal-mu"  # FedProx: weight of the client's proximal term

# Array records of a train message beside the model.
GRAD_SCALES = "grad-scales"  # FedRepOpt: per-channel RepOpt scales -> gradient masks

# A node's Context.state: the arrays a partially updating client keeps (FedVSSL).
LOCAL_ARRAYS = "partial-local-arrays"

# Reply metrics.
NUM_EXAMPLES = "num-examples"  # the aggregation weight
PARTITION_ID = "partition-id"
NUM_PARTITIONS = "num-partitions"
PARTIAL_LOCAL_ARRAYS_USED = "partial-local-arrays"  # 1 when a round started from kept arrays
# Metrics that identify a reply rather than measure it: never averaged across clients.
IDENTITY_METRICS = (PARTITION_ID,)
