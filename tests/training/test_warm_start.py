"""Warm start (`malt.training.warm_start`): a run from a finished run's model and optimiser."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from malt.cli import main
from malt.data.layout import write_vocab
from malt.errors import ConfigError
from malt.eval.predictions import Predictions
from malt.jobs.train import train_run
from malt.runs.checkpoint import load_checkpoint
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from malt.training.builder import build_run
from malt.training.warm_start import plan_warm_start, start_from_parent
from support.mac_data import write_random_dataset
from support.training_steps import stop_at_step

SEED = 7


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_random_dataset(tmp_path_factory.mktemp("warm") / "data", days=5, rows=203)


def _config(data: Path, *, init: dict | None = None, **data_options) -> RunConfig:
    """An MMoE with auxiliary views, shuffled rows and dropout-free towers. The warm-up is
    off: its length is a fraction of a run's own steps, which a run that stops early cannot
    know, so a pass cut in two warms up differently (see docs/training.md)."""
    return RunConfig.from_dict({
        "seed": SEED, "data": {"path": str(data), **data_options},
        "task": {"main": "last", "aux": ["first", "cat"]},
        "train": {"batch_size": 64, "shuffle": True, "warmup_fraction": 0.0},
        "init": init or {},
        "model": {"name": "mmoe", "encoder": {"embed_dim": 4, "attention_heads": 2},
                  "expert": {"dim": 8}, "tower": {"dims": [4]}},
    })


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoint.safetensors").model


@pytest.fixture(scope="module")
def whole_and_parent(data, tmp_path_factory) -> tuple[Path, Path]:
    """One pass over training days 0..3, and a run over days 0..1 only."""
    root = tmp_path_factory.mktemp("runs")
    train_run(_config(data), root / "whole")
    train_run(_config(data, train_days=2), root / "parent")
    return root / "whole", root / "parent"


def test_warm_start_with_optimiser_continues_the_pass_bit_for_bit(data, whole_and_parent,
                                                                  tmp_path):
    whole, parent = whole_and_parent
    child = tmp_path / "child"
    train_run(_config(data, train_from="2", init={"from_run": str(parent), "optimiser": True}),
              child)
    mine, reference = _weights(child), _weights(whole)
    assert mine.keys() == reference.keys()
    for name, tensor in reference.items():
        assert torch.equal(mine[name], tensor), name
    np.testing.assert_array_equal(Predictions.load(child / "predictions.npz").probs,
                                  Predictions.load(whole / "predictions.npz").probs)
    # The optimiser continued: its step count is the parent's and the child's together.
    steps = load_checkpoint(child / "checkpoint.safetensors").optimisation
    assert int(steps["schedulers"][0]["last_epoch"]) == 4 * 4


def test_warm_start_without_the_optimiser_state_is_another_pass(data, whole_and_parent,
                                                                tmp_path):
    """The comparison above fails when the optimiser state is not loaded: fresh Adam moments
    move the weights elsewhere (the parent's weights are taken all the same)."""
    whole, parent = whole_and_parent
    child = tmp_path / "child"
    train_run(_config(data, train_from="train-02", init={"from_run": str(parent)}), child)
    mine, reference = _weights(child), _weights(whole)
    assert not all(torch.equal(mine[n], t) for n, t in reference.items())
    scheduler = load_checkpoint(child / "checkpoint.safetensors").optimisation["schedulers"][0]
    assert int(scheduler["last_epoch"]) == 2 * 4
    # ... and it did start from the parent: far closer to the whole pass than a fresh model.
    fresh = tmp_path / "fresh"
    train_run(_config(data, train_from="2"), fresh)
    tables = [n for n in reference if n.endswith("tables.0.weight")]
    distance = {run: sum(float((_weights(run)[n] - reference[n]).norm()) for n in tables)
                for run in (child, fresh)}
    assert distance[child] < distance[fresh]


def _small_vocab_data(root: Path) -> Path:
    """Days with ids 1..49 and vocabs that know only ids 0..29."""
    data = write_random_dataset(root, days=4, rows=150, seed=3)
    from malt.data.schema import MAC

    for column in MAC.vocab_columns:
        write_vocab(data / "vocabs", column, [str(i) for i in range(30)])
    return data


def test_new_ids_get_fresh_rows_and_known_ids_keep_theirs(tmp_path):
    from malt.data.schema import MAC

    data = _small_vocab_data(tmp_path / "data")
    parent = tmp_path / "parent"
    train_run(_config(data, train_days=1, cache=str(tmp_path / "cache")), parent)
    config = _config(data, train_from="1", train_days=1, cache=str(tmp_path / "cache"),
                     init={"from_run": str(parent), "optimiser": True})
    staging = tmp_path / "staging"
    warm = plan_warm_start(config, RunDir(tmp_path / "child"), staging)

    # Known ids keep their index; the new ones follow in sorted order.
    grown = json.loads((staging / "ad_feat0.json").read_text())
    assert {k: grown[k] for k in map(str, range(30))} == {str(i): i for i in range(30)}
    assert sorted(grown, key=grown.get)[30:] == sorted(set(grown) - set(map(str, range(30))),
                                                      key=int)
    assert warm.vocabs.new_ids["ad_feat0"] == len(grown) - 30 > 0

    built = build_run(config, vocab_dir=warm.vocab_dir)
    fresh = {n: t.detach().clone() for n, t in built.model.state_dict().items()}
    fitted = start_from_parent(built.model, built.optimisation, warm, config)
    before = load_checkpoint(parent / "checkpoint.safetensors")
    table = MAC.field_names.index("ad_feat0")  # its table, shared with ad_feat0_seq
    name = f"encoder.embeddings.tables.{table}.weight"
    old, new = before.model[name], fitted.model[name]
    assert old.shape[0] == 31 and new.shape[0] == len(grown) + 1
    assert torch.equal(new[:30], old[:30])        # known ids: the parent's rows, same index
    assert torch.equal(new[-1], old[-1])          # the out-of-vocabulary row, moved last
    assert torch.equal(new[30:-1], fresh[name][30:-1])  # new ids: as a fresh model has them
    assert not torch.equal(new[30:-1], torch.zeros_like(new[30:-1]))

    # The optimiser's per-row moments grow alike: zero for rows Adam has never moved.
    table_state = [s for s in fitted.optimisation["optimizers"][1]["state"].values()
                   if s["moments"].shape[0] == new.shape[0]][0]
    parent_state = [s for s in before.optimisation["optimizers"][1]["state"].values()
                    if s["moments"].shape[0] == 31][0]
    assert torch.equal(table_state["moments"][:30], parent_state["moments"][:30])
    assert torch.equal(table_state["moments"][-1], parent_state["moments"][-1])
    assert not table_state["moments"][30:-1].any()


def test_new_ids_rarer_than_the_min_count_are_not_added(tmp_path):
    from malt.data.layout import find_layout
    from malt.data.schema import MAC
    from malt.data.vocab_build import count_ids

    data = _small_vocab_data(tmp_path / "data")
    parent = tmp_path / "parent"
    train_run(_config(data, train_days=1), parent)
    counts = count_ids([find_layout(data).train[1]], MAC, ["ad_feat0"])["ad_feat0"].to_pydict()
    new = {str(i): n for i, n in zip(counts["id"], counts["n"], strict=True) if i >= 30}
    min_count = sorted(new.values())[len(new) // 2]  # keeps about half of the new ids
    kept = {i for i, n in new.items() if n >= min_count}
    assert 0 < len(kept) < len(new)
    config = _config(data, train_from="1", train_days=1,
                     init={"from_run": str(parent), "min_count": min_count})
    warm = plan_warm_start(config, RunDir(tmp_path / "child"), tmp_path / "staging")
    grown = json.loads((tmp_path / "staging" / "ad_feat0.json").read_text())
    assert set(grown) == set(map(str, range(30))) | kept
    assert warm.vocabs.new_ids["ad_feat0"] == len(kept)


def test_the_min_count_needs_a_parent():
    with pytest.raises(ConfigError, match="init.min_count apply to a warm start"):
        RunConfig.from_dict({"init": {"min_count": 2}})


def test_a_grown_run_trains_and_loads_with_its_own_vocabs(tmp_path):
    data = _small_vocab_data(tmp_path / "data")
    parent, child = tmp_path / "parent", tmp_path / "child"
    train_run(_config(data, train_days=1), parent)
    train_run(_config(data, train_from="1", train_days=2, init={"from_run": str(parent)}),
              child)
    from malt.runs.load import load_run

    loaded = load_run(child)
    assert loaded.lookups["ad_feat0"].size > load_run(parent).lookups["ad_feat0"].size
    assert loaded.parent is not None and loaded.parent.path == str(parent.resolve())
    assert loaded.parent.new_ids["ad_feat0"] > 0
    assert (child / "vocabs" / "ad_feat0.json").is_file()


def _cli(*args: str) -> list[str]:
    return ["train", "--batch-size", "64", "--warmup-fraction", "0", "--model", "base",
            "--model-option", "encoder.embed_dim=4", *args]


def test_a_chain_of_three_daily_runs_records_its_lineage(data, tmp_path, capsys):
    runs = [tmp_path / f"day-{d}" for d in range(3)]
    assert main(_cli("--data", str(data), "--train-days", "1", "--out", str(runs[0]))) == 0
    for day in (1, 2):  # the config comes from the parent: only the day is said
        assert main(["train", "--init-from", str(runs[day - 1]), "--init-optimiser",
                     "--train-from", f"train-0{day}", "--train-days", "1",
                     "--out", str(runs[day])]) == 0
    assert "warm-started from" in capsys.readouterr().out
    assert RunDir(runs[2]).lineage() == [runs[1].resolve(), runs[0].resolve()]
    saved = RunDir(runs[2]).load_config()
    assert (saved.model["name"], saved.data.train_from, saved.init.optimiser) == \
        ("base", "train-02", True)
    assert main(["eval", "--run", str(runs[2])]) == 0
    shown = capsys.readouterr().out
    assert f"lineage: {runs[2]} <- {runs[1].resolve()} <- {runs[0].resolve()}" in shown
    import malt

    assert malt.load_run(runs[2]).parent.path == str(runs[1].resolve())


@pytest.mark.parametrize("flags, difference", [
    (["--main", "first"], "task.main: 'first' here, 'last' in the parent"),
    (["--label-mode", "weighted"], "task.label_mode: 'weighted' here, 'binary' in the parent"),
    (["--model-option", "encoder.embed_dim=8"],
     "model.encoder.embed_dim: 8 here, 4 in the parent"),
    (["--init-optimiser", "--lr", "0.01"], "train.lr: 0.01 here, 0.003 in the parent"),
])
def test_a_parent_of_another_task_or_model_is_refused(data, tmp_path, capsys, flags,
                                                      difference):
    parent = tmp_path / "parent"
    assert main(_cli("--data", str(data), "--train-days", "1", "--out", str(parent))) == 0
    capsys.readouterr()
    child = tmp_path / "child"
    assert main(["train", "--init-from", str(parent), "--out", str(child), *flags]) == 3
    assert difference in capsys.readouterr().err
    assert not child.exists()


def test_a_parent_of_another_schema_is_refused(data, tmp_path, capsys):
    parent = tmp_path / "parent"
    assert main(_cli("--data", str(data), "--train-days", "1", "--out", str(parent))) == 0
    schema = json.loads((parent / "schema.json").read_text())
    schema["sequence_pad"] = "9"
    other = tmp_path / "schema.json"
    other.write_text(json.dumps(schema))
    capsys.readouterr()
    assert main(["train", "--init-from", str(parent), "--schema", str(other),
                 "--out", str(tmp_path / "child")]) == 3
    assert "schema.sequence_pad: '9' here, '0' in the parent" in capsys.readouterr().err


def test_a_parent_that_is_missing_unfinished_or_not_a_run_is_refused(data, tmp_path, capsys):
    unfinished = tmp_path / "unfinished"
    assert main(_cli("--data", str(data), "--train-days", "1", "--out", str(unfinished))) == 0
    (unfinished / "metrics.json").unlink()
    state = load_checkpoint(unfinished / "checkpoint.safetensors")
    assert state.state.finished
    (tmp_path / "empty").mkdir()
    for parent, message in [(tmp_path / "nowhere", "there is no such run directory"),
                            (tmp_path / "empty", "is not a run directory"),
                            (data, "is not a run directory")]:
        capsys.readouterr()
        assert main(["train", "--init-from", str(parent), "--data", str(data),
                     "--out", str(tmp_path / "child")]) == 3
        assert message in capsys.readouterr().err
    _unfinish(unfinished / "checkpoint.safetensors")
    assert main(["train", "--init-from", str(unfinished), "--out", str(tmp_path / "child")]) == 3
    assert "has not finished training" in capsys.readouterr().err


def _unfinish(checkpoint: Path) -> None:
    from malt.runs.checkpoint import CHECKPOINT_KIND
    from malt.runs.tensor_tree import read_tree, write_tree

    payload = read_tree(checkpoint, kind=CHECKPOINT_KIND)
    payload["state"]["finished"] = False
    write_tree(checkpoint, payload, kind=CHECKPOINT_KIND)


def test_the_numeric_statistics_are_the_parents_unless_refit(tmp_path):
    from malt.data.schema import MAC, Schema

    tree = MAC.to_dict()
    tree["numeric"] = ["price"]
    schema = Schema.from_dict(tree, source="test")
    data = write_random_dataset(tmp_path / "data", schema, days=4, rows=120)
    import pyarrow.parquet as pq

    for d, path in enumerate(sorted((data / "train").glob("*.parquet"))):
        table = pq.read_table(path)
        pq.write_table(table.append_column("price", [np.full(table.num_rows, 10.0 * d + 1)]),
                       path)
    test = data / "test" / "test.parquet"
    table = pq.read_table(test)
    pq.write_table(table.append_column("price", [np.ones(table.num_rows)]), test)
    (data / "schema.json").write_text(json.dumps(tree))
    base = ["--data", str(data), "--schema", str(data / "schema.json")]
    parent = tmp_path / "parent"
    assert main(_cli(*base, "--train-days", "1", "--out", str(parent))) == 0
    shifts = {}
    for choice in ("parent", "refit"):
        out = tmp_path / f"numeric-{choice}"
        assert main(["train", "--init-from", str(parent), "--init-numeric", choice,
                     "--train-from", "2", "--train-days", "1", "--out", str(out)]) == 0
        shifts[choice] = float(_weights(out)["encoder.numeric_shift"][0])
        assert json.loads((out / "parent.json").read_text())["numeric"] == choice
    assert shifts == {"parent": 1.0, "refit": 21.0}


def test_an_interrupted_warm_start_resumes_to_the_same_numbers(tmp_path, monkeypatch):
    from malt.errors import Interrupted
    from malt.training.trainer import Trainer

    data = _small_vocab_data(tmp_path / "data")
    parent = tmp_path / "parent"
    train_run(_config(data, train_days=1), parent)
    child = _config(data, train_from="1", train_days=2,
                    init={"from_run": str(parent), "optimiser": True})
    train_run(child, tmp_path / "whole")
    original = stop_at_step(monkeypatch, 4)  # inside the second day
    with pytest.raises(Interrupted):
        train_run(child, tmp_path / "cut")
    monkeypatch.setattr(Trainer, "train_step", original)
    train_run(child, tmp_path / "cut", resume=True)
    for name, tensor in _weights(tmp_path / "whole").items():
        assert torch.equal(_weights(tmp_path / "cut")[name], tensor), name
    # Replacing a warm-started run removes its vocabs with the rest of what malt wrote.
    train_run(child, tmp_path / "cut", overwrite=True)
    assert (tmp_path / "cut" / "vocabs" / "ad_feat0.json").is_file()


def test_the_api_warm_starts_from_a_mapping_of_what_changes(data, tmp_path):
    import malt

    config = _config(data, train_days=1).to_dict()
    del config["init"]
    parent = malt.train(config, tmp_path / "parent")
    child = malt.train({"data": {"train_from": "1", "train_days": 1}}, tmp_path / "child",
                       init_from=parent.path, init_optimiser=True)
    assert child.parent is not None and child.parent.optimiser
    assert child.parent.path == str((tmp_path / "parent").resolve())
    assert child.lineage == [(tmp_path / "parent").resolve()]
    assert child.config.model == parent.config.model and child.config.task == parent.config.task
    assert parent.parent is None and parent.lineage == []


def test_hashed_fields_keep_their_table(tmp_path):
    from malt.data.schema import MAC, Schema

    tree = MAC.to_dict()
    tree["hash_buckets"] = {"context_feat3": 16}
    schema = Schema.from_dict(tree, source="test")
    data = _small_vocab_data(tmp_path / "data")
    (data / "schema.json").write_text(json.dumps(tree))
    options = {"schema": str(data / "schema.json"), "train_days": 1}
    parent = tmp_path / "parent"
    train_run(_config(data, **options), parent)
    config = _config(data, train_from="1", **options,
                     init={"from_run": str(parent), "optimiser": True})
    warm = plan_warm_start(config, RunDir(tmp_path / "child"), tmp_path / "staging")
    assert "context_feat3" not in warm.vocabs.new_ids and warm.vocabs.new_ids["ad_feat0"] > 0
    built = build_run(config, vocab_dir=warm.vocab_dir)
    fitted = start_from_parent(built.model, built.optimisation, warm, config)
    name = f"encoder.embeddings.tables.{schema.field_names.index('context_feat3')}.weight"
    assert torch.equal(fitted.model[name], load_checkpoint(parent / "checkpoint.safetensors")
                       .model[name])
