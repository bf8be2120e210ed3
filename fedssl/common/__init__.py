"""What every part of fedssl may import: the tagged registry, the message keys server and
client share, and the RepOpt scales file format. Nothing here imports torch models, Flower,
datasets or a task."""
