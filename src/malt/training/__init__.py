"""Training: the trainer, optimisers, gradient methods and per-view losses."""
