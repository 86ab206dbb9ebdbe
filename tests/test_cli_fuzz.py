"""The command line under bad input, drawn at random: a damaged file of a data set or a run
directory, or an out-of-range value of a config field. Whatever is drawn, the command exits 0
or 3, prints no traceback, and changes nothing outside its own output.

`MALT_FUZZ_EXAMPLES` sets how many cases each test draws (docs/testing.md records a long run).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st

from malt.cli import main
from malt.commands._options import config_flags
from malt.data.schema import MAC, Schema
from malt.jobs.train import train_run
from malt.runs.config import RunConfig
from support.mac_data import write_random_dataset
from support.model_configs import SMALL_BLOCKS

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("MALT_FUZZ_EXAMPLES", "12"))
FUZZ_SEED = os.environ.get("MALT_FUZZ_SEED")
"""Draw other cases than CI's fixed ones (CI derandomizes, so that it fails only on a bug)."""
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=FUZZ_SEED is None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def fuzz(test):
    """The fuzz settings, and `MALT_FUZZ_SEED`'s seed when it is set."""
    test = FUZZ(test)
    return seed(int(FUZZ_SEED))(test) if FUZZ_SEED else test


SMALL_MODEL = ["--model-option", "encoder.embed_dim=8", "--model-option",
               "encoder.attention_heads=2", "--model-option", "tower.dims=[8, 4]",
               "--batch-size", "64"]
DAMAGES = ("truncate", "flip-bytes", "garbage", "empty", "delete", "directory",
           "dangling-link", "text")


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """A tiny data set and a finished run trained on it."""
    root = tmp_path_factory.mktemp("fuzz")
    data = write_random_dataset(root / "data", days=3, rows=150)
    (data / "schema.toml").write_text(MAC_TOML)
    assert Schema.load(data / "schema.toml") == MAC
    run = root / "run"
    train_run(RunConfig.from_dict({"data": {"path": str(data)}, "train": {"batch_size": 64},
                                   "model": {"name": "base", **SMALL_BLOCKS}}), run)
    return data, run


def _toml(values: dict) -> str:
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())


MAC_TOML = (_toml({"name": "mac", "user_column": MAC.user_column, "labels": list(MAC.labels),
                   "sequence_pad": MAC.sequence_pad, "sequence_length": MAC.sequence_length,
                   "float_sequences": [s.name for s in MAC.float_sequences],
                   "true_probability_column": MAC.true_probability_column,
                   "true_credit_column": MAC.true_credit_column})
            + "[fields]\n" + _toml({g: [f.name for f in MAC.fields if f.group == g]
                                    for g in ("user", "ad", "context")})
            + "[id_sequences]\n" + _toml({s.name: s.shares for s in MAC.id_sequences}))
"""The MAC schema as a data set's own `schema.toml`, so that the fuzz can damage it too."""


@contextlib.contextmanager
def workspace(originals, tmp_path: Path):
    """Fresh copies of the data set and the run (pointing at its copy), for one example."""
    data, run = originals
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    try:
        shutil.copytree(data, root / "data")
        shutil.copytree(run, root / "run")
        config = root / "run" / "config.json"
        config.write_text(config.read_text().replace(str(data), str(root / "data")))
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def damage(path: Path, how: str, draw) -> None:
    """Damage the file at `path` in the way `how`; `draw` picks the details."""
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[:draw(st.integers(0, max(len(data) - 1, 0)))])
    elif how == "flip-bytes":
        buffer = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(0, len(buffer) - 1))
            buffer[at] ^= draw(st.integers(1, 255))
        path.write_bytes(bytes(buffer))
    elif how == "garbage":
        path.write_bytes(draw(st.binary(min_size=1, max_size=2000)))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "delete":
        path.unlink()
    elif how == "directory":
        path.unlink()
        path.mkdir()
    elif how == "dangling-link":
        path.unlink()
        path.symlink_to(path.with_name("nowhere"))
    elif how == "text":
        path.write_text(draw(st.sampled_from(['{"a": 1}', "[]", "null", "1e999", "NaN",
                                              'name = "x"', "\x00\x01"])))


def snapshot(root: Path, outputs: tuple[Path, ...]) -> dict[str, str]:
    """A digest of every file and link under `root` outside `outputs` (and malt's caches)."""
    seen = {}
    for path in sorted(root.rglob("*")):
        if any(path == o or o in path.parents for o in outputs) or ".malt_cache" in path.parts:
            continue
        if path.is_symlink():
            seen[str(path)] = "link " + os.readlink(path)
        elif path.is_file():
            seen[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            seen[str(path)] = "dir"
    return seen


def run_command(args: list[str]) -> tuple[int, str]:
    """Exit code and standard error of `malt ARGS`, run in this process (an exception that
    escapes `main` fails the test with its traceback)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(args)
        except SystemExit as exit_:
            code = exit_.code
    return code, err.getvalue()


def check(workspace: Path, args: list[str], outputs: tuple[Path, ...]) -> tuple[int, str]:
    """Run `malt ARGS`: exit 0 or 3, no traceback, nothing changed outside `outputs`."""
    before = snapshot(workspace, outputs)
    code, err = run_command(args)
    event(f"malt {args[0]} exited {code}")
    assert code in (0, 3), (code, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    assert snapshot(workspace, outputs) == before
    return code, err


def data_files(data: Path) -> list[str]:
    """Every file of the data set, its schema and its cache included."""
    return sorted(p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file())


RUN_FILES = ("config.json", "schema.json", "metrics.json", "checkpoint.safetensors",
             "predictions.npz", ".malt-manifest.json")


@fuzz
@given(draw=st.data())
def test_a_damaged_data_file_is_refused_or_read(originals, tmp_path, draw):
    with workspace(originals, tmp_path) as root:
        damaged_data_case(root, draw)


def damaged_data_case(workspace: Path, draw) -> None:
    data = workspace / "data"
    target = draw.draw(st.sampled_from(data_files(data)), label="file")
    damage(data / target, draw.draw(st.sampled_from(DAMAGES), label="damage"), draw.draw)
    out = workspace / "out"
    command = draw.draw(st.sampled_from(["prepare", "train"]), label="command")
    if command == "prepare":
        check(workspace, ["prepare", "--data", str(data)], ())
    else:
        check(workspace, ["train", "--data", str(data), "--out", str(out), *SMALL_MODEL],
              (out,))


@fuzz
@given(draw=st.data())
def test_a_damaged_run_file_is_refused_or_read(originals, tmp_path, draw):
    with workspace(originals, tmp_path) as root:
        damaged_run_case(root, draw)


def damaged_run_case(workspace: Path, draw) -> None:
    run, data = workspace / "run", workspace / "data"
    target = draw.draw(st.sampled_from(RUN_FILES), label="file")
    damage(run / target, draw.draw(st.sampled_from(DAMAGES), label="damage"), draw.draw)
    out = workspace / "out"
    commands = {
        "eval": (["eval", "--run", str(run)], ()),
        "eval-data": (["eval", "--run", str(run), "--data", str(data)], ()),
        "predict": (["predict", "--run", str(run), "--data", str(data / "test"),
                     "--out", str(out)], (out,)),
        "export": (["export", "--run", str(run), "--format", "torchscript", "--out",
                    str(out)], (out, out.with_name("out.json"))),
        "resume": (["train", "--resume", "--out", str(run)], (run,)),
    }
    args, outputs = commands[draw.draw(st.sampled_from(sorted(commands)), label="command")]
    check(workspace, args, outputs)


def numeric_flags():
    """The run config's flags that take one number."""
    found = []
    for flag in config_flags():
        container = typing.get_origin(_bare(flag.annotation)) in (list, tuple, dict)
        if not container and set(_leaves(flag.annotation)) & {int, float}:
            found.append(flag)
    return found


def _bare(annotation):
    """`annotation` without `Annotated` markers."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _leaves(annotation):
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        return _leaves(args[0])
    if not args or typing.get_origin(annotation) is typing.Literal:
        return [annotation]
    return [leaf for a in args for leaf in _leaves(a)]


ODD_NUMBERS = st.one_of(
    st.sampled_from([0, -1, -2, 2**63, -2**63, 2**64, 10**30, math.nan, math.inf, -math.inf,
                     -0.0, 1e-320, 1e308]),
    st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True))


@fuzz
@given(draw=st.data())
def test_an_odd_number_for_a_config_field_is_refused_or_used(originals, tmp_path, draw):
    with workspace(originals, tmp_path) as root:
        odd_number_case(root, draw)


def odd_number_case(workspace: Path, draw) -> None:
    flag = draw.draw(st.sampled_from(numeric_flags()), label="flag")
    value = draw.draw(ODD_NUMBERS, label="value")
    text = repr(value) if not isinstance(value, float) or math.isfinite(value) else \
        {"nan": "nan", "inf": "inf", "-inf": "-inf"}[repr(value)]
    out = workspace / "out"
    data = workspace / "data"
    # `--flag=value`: argparse takes a lone "-1e+16" for an option, not a value.
    code, err = check(workspace, ["train", "--data", str(data), "--out", str(out), *SMALL_MODEL,
                                  f"{flag.option}={text}"], (out,))
    if code == 3:  # refused up front naming the value's key, or stopped as it diverged
        assert ".".join(flag.path) in err or flag.option in err or \
            "training diverged" in err, err
