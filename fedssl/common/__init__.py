"""What every part of fedssl may import: the tagged registry, the message keys server and
client share, the RepOpt scales file format and retrieval recall@k (pure, on features).
Nothing here imports torch models, Flower, datasets or a task."""
