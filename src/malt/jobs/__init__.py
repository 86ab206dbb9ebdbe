"""The jobs that make runs: `train.train_run` trains and evaluates one run into its directory.

A job drives the layers below it (the builder and the trainer, the evaluation, the run
directory); the commands, the studies and the Python API start jobs, and nothing below them
does.
"""
