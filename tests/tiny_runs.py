"""Run-config overrides that keep a real federated run short on 2 CPU cores: few local steps,
small evaluation subsets, no W&B. What the end-to-end tests check is behaviour, not accuracy."""

# The training and evaluation part, for runs whose rounds and node counts are set elsewhere.
TINY_TRAINING = [
    "max-local-steps=2", "batch-size=32", "eval-every=1", "eval-max-samples=300",
    "linear-probe=false", "wandb-mode=disabled", "partitioner=iid",
]
# Two rounds over three simulated SuperNodes.
TINY = ["num-server-rounds=2", "min-train-nodes=2", "min-available-nodes=3", *TINY_TRAINING]
