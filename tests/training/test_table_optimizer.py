"""The run config's table optimiser: which gradients it asks of the model, and old run configs."""

import pytest

from malt.errors import ConfigError
from malt.runs.config import RunConfig, upgraded


@pytest.mark.parametrize("table_optimizer, grad_method, device, sparse", [
    ("rows", "none", "cpu", True),
    ("rows", "gcs", "cpu", False),   # GCS and PCGrad combine dense per-task gradients
    ("rows", "none", "cuda", False),  # NCCL has no sparse all-reduce
    ("lazy", "none", "cuda", True),
    ("dense", "none", "cpu", False),
])
def test_the_table_optimizer_decides_the_gradients_of_the_tables(table_optimizer, grad_method,
                                                                 device, sparse):
    config = RunConfig.from_dict({"train": {"table_optimizer": table_optimizer,
                                            "grad_method": grad_method},
                                  "model": {"name": "mmoe"}, "task": {"aux": ["first"]}})
    assert config.sparse_table_gradients(device) is sparse
    assert config.model_config(device).encoder.sparse_embeddings is sparse


def test_rows_is_the_default():
    config = RunConfig()
    assert config.train.table_optimizer == "rows" and config.sparse_table_gradients()


def test_lazy_adam_needs_the_plain_gradient_sum():
    with pytest.raises(ConfigError, match="'lazy' works with grad_method 'none', 'uncertainty' "
                                          "or 'dwa' only: 'pcgrad' needs dense"):
        RunConfig.from_dict({"train": {"table_optimizer": "lazy", "grad_method": "pcgrad"}})


@pytest.mark.parametrize("lazy, table_optimizer", [(True, "lazy"), (False, "dense")])
def test_the_runs_of_earlier_versions_read_lazy_adam_as_the_table_optimizer(lazy,
                                                                           table_optimizer):
    raw = {"seed": 3, "train": {"lr": 0.01, "lazy_adam": lazy}}
    config = RunConfig.from_dict(raw)
    assert config.train.table_optimizer == table_optimizer and config.train.lr == 0.01
    assert raw["train"]["lazy_adam"] is lazy  # the caller's table is not changed
    assert upgraded({"seed": 3}) == {"seed": 3}


def test_an_old_and_a_new_name_together_or_a_bad_old_value_are_errors():
    with pytest.raises(ConfigError, match="old name of train.table_optimizer"):
        RunConfig.from_dict({"train": {"lazy_adam": True, "table_optimizer": "rows"}})
    with pytest.raises(ConfigError, match="run.toml: train.lazy_adam = 'yes'"):
        RunConfig.from_dict({"train": {"lazy_adam": "yes"}}, source="run.toml")


def test_lazy_adam_on_several_gpus_is_refused_before_anything_starts(monkeypatch):
    from malt.training import builder

    monkeypatch.setattr(builder, "resolve_device", lambda name: "cuda")
    monkeypatch.setenv("WORLD_SIZE", "2")
    config = RunConfig.from_dict({"train": {"table_optimizer": "lazy", "device": "cuda"}})
    with pytest.raises(ConfigError, match="NCCL has no all-reduce of sparse gradients"):
        builder.build_run(config)
    # `rows` trains with dense gradients on CUDA, so it gets past this check.
    monkeypatch.setattr(builder, "init_world", lambda device: (_ for _ in ()).throw(
        RuntimeError("past the check")))
    with pytest.raises(RuntimeError, match="past the check"):
        builder.build_run(RunConfig.from_dict({"train": {"device": "cuda"}}))
