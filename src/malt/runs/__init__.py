"""A run: its config, its directory and what the directory holds, and a finished run loaded back.

    config       RunConfig: the typed config of a run (`config.json`)
    checkpoint   the checkpoint format (`checkpoint.safetensors`) on `tensor_tree`
    directory    RunDir: the paths of a run directory and its files
    record       RunMetrics: the record of a finished run (`metrics.json`)
    tracking     the run in MLflow besides TensorBoard (`mlflow.json`)

The trainer writes into a run and the jobs above it start one, so this package lies below
training: nothing here builds, trains or evaluates.
"""
