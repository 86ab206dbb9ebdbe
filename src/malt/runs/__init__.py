"""A run: its config, its directory and what the directory holds, and a finished run loaded back.

    config       RunConfig: the typed config of a run (`config.json`)
    checkpoint   the checkpoint format (`checkpoint.safetensors`) on `tensor_tree`
    directory    RunDir: the paths of a run directory and its files
    record       RunMetrics: the record of a finished run (`metrics.json`)
    tracking     the run in MLflow besides TensorBoard (`mlflow.json`)
    load         load_run: a finished run's model, schema and vocabs, loaded back

The trainer writes into a run, and whatever reads a finished run (`malt eval --data`, predict,
export, the API, a warm start) loads it with `load.load_run`: so this package lies below
training, and nothing here builds, trains or evaluates. The job that makes a run is
`malt.jobs.train`.
"""
