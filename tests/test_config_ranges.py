"""Every number a user can configure has its valid range in its type, and the range is enforced.

The config dataclasses are found by walking malt's modules (every dataclass named `...Config`,
`...Options` or `...Params`, and the `Study` the study options become), so a new field, or a new
config class, with a bare `int` or `float` fails here. For every ranged field, values just
outside each bound (and NaN and infinity for a finite number) are refused with a `ConfigError`
naming the field, when the object is built in Python as when it is read from a file.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import pkgutil
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Union

import pytest

import malt
from malt.errors import ConfigError
from malt.typed_fields import Range, hints, ranges

CONFIG_SUFFIXES = ("Config", "Options", "Params")


def config_classes() -> list[type]:
    """Every config dataclass of malt (see the module docstring)."""
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(malt.__path__, "malt."):
        if info.name == "malt.__main__":  # importing it runs the command line
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and dataclasses.is_dataclass(obj) and \
                    obj.__module__ == module.__name__ and name.endswith(CONFIG_SUFFIXES):
                found[f"{obj.__module__}.{name}"] = obj
    from malt.experiments.study import Study

    found["malt.experiments.study.Study"] = Study
    return [found[k] for k in sorted(found)]


def default_instance(cls: type) -> Any:
    """An instance of `cls` with valid values (its defaults where every field has one)."""
    from malt.data.options import PrepareOptions
    from malt.deploy.options import ExportOptions, PredictOptions
    from malt.eval.options import CalibrateOptions, CompareOptions, EvalOptions
    from malt.eval.truth_options import TruthOptions
    from malt.experiments.engine import StudyOptions
    from malt.experiments.rolling_options import RollingOptions
    from malt.experiments.study import Study
    from malt.runs.options import TrainOptions, UpgradeRunOptions
    from malt.serve.options import ServeOptions
    from malt.sources.attribution.config import AttributeOptions
    from malt.sources.fetch import FetchOptions
    from malt.sources.kuairand_options import KuaiRandSimOptions
    from malt.sources.simulate import app_promotion
    from malt.sources.simulate import config as simulate
    from malt.sources.simulate.options import SimulateOptions

    made = {
        simulate.SimConfig: lambda: simulate.SIZES["tiny"],
        app_promotion.AppSimConfig: lambda: app_promotion.SIZES["tiny"],
        StudyOptions: lambda: StudyOptions(names=("main",)),
        AttributeOptions: lambda: AttributeOptions(clicks="clicks.csv", out="out"),
        SimulateOptions: lambda: SimulateOptions(out="out"),
        FetchOptions: lambda: FetchOptions(dataset="mac", dest="mac"),
        PredictOptions: lambda: PredictOptions(run="run", data="data", out="out.parquet"),
        ExportOptions: lambda: ExportOptions(run="run", out="model.onnx"),
        EvalOptions: lambda: EvalOptions(run="run"),
        CalibrateOptions: lambda: CalibrateOptions(run="run"),
        CompareOptions: lambda: CompareOptions(runs=["a"], baseline=["b"]),
        PrepareOptions: lambda: PrepareOptions(data="data"),
        TrainOptions: lambda: TrainOptions(out="run"),
        RollingOptions: lambda: RollingOptions(out="out", start="0"),
        ServeOptions: lambda: ServeOptions(run="run"),
        UpgradeRunOptions: lambda: UpgradeRunOptions(paths=["runs"]),
        KuaiRandSimOptions: lambda: KuaiRandSimOptions(raw="raw", out="out"),
        TruthOptions: lambda: TruthOptions(data="data"),
        Study: lambda: Study(preset="smoke", setup=None, data=Path("data"), output=None,
                             labels=("last",), seeds=(1,)),
    }
    return made[cls]() if cls in made else cls()


def unranged_numbers(annotation: Any) -> list[Any]:
    """The `int`/`float` inside `annotation` that no `Range` bounds."""
    if typing.get_origin(annotation) is Annotated:
        return [] if ranges(annotation) else unranged_numbers(typing.get_args(annotation)[0])
    if annotation in (int, float):
        return [annotation]
    return [n for a in typing.get_args(annotation) if a is not Ellipsis
            for n in unranged_numbers(a)]


def just_outside(bounded: Range, number: type) -> list[float]:
    """Values `bounded` refuses: past each bound, and NaN and infinities where they apply."""
    step = (lambda x, d: x + d) if number is int else \
        (lambda x, d: math.nextafter(x, d * math.inf))
    values: list[float] = []
    if bounded.low is not None:
        values.append(bounded.low if bounded.low_open else step(bounded.low, -1))
    if bounded.high is not None:
        values.append(bounded.high if bounded.high_open else step(bounded.high, 1))
    if number is float:
        values.append(math.nan)
        if not bounded.infinite:
            values += [math.inf, -math.inf]
        elif bounded.low is not None:
            values.append(-math.inf)
    return [number(v) if number is int else v for v in values]


def refused_values(annotation: Any, default: Any) -> list[Any]:
    """Values of the shape of `annotation` with one number out of its range."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return [v for r in ranges(annotation) for v in just_outside(r, args[0])]
    if origin in (Union, types.UnionType):
        return [v for a in args for v in refused_values(a, default)]
    if origin in (list, tuple) and (len(args) == 2 and args[1] is Ellipsis or origin is list):
        return [(v,) for v in refused_values(args[0], None)]
    if origin is tuple:
        return [(*default[:i], v, *default[i + 1:]) for i, a in enumerate(args)
                for v in refused_values(a, None)]
    if origin is dict:
        return [{"key": v} for v in refused_values(args[1], None)]
    return []


def ranged_fields() -> list[tuple[type, str, Any]]:
    out = []
    for cls in config_classes():
        for f in dataclasses.fields(cls):
            annotation = hints(cls)[f.name]
            if refused_values(annotation, getattr(default_instance(cls), f.name)):
                out.append((cls, f.name, annotation))
    return out


def test_the_walk_finds_the_config_classes():
    names = {c.__name__ for c in config_classes()}
    assert {"RunConfig", "TrainConfig", "EncoderConfig", "KAMLConfig", "StudyOptions", "Study",
            "SimConfig", "Params", "AppSimConfig", "AppParams", "AttributionConfig",
            "KuaiRandOptions", "AdmOptions"} <= names


def test_every_number_of_every_config_class_states_its_range():
    bare = {f"{cls.__name__}.{f.name}": unranged_numbers(hints(cls)[f.name])
            for cls in config_classes() for f in dataclasses.fields(cls)}
    assert not {k: v for k, v in bare.items() if v}


def test_every_config_class_checks_its_ranges_when_built():
    # A class whose __post_init__ does not check would let every out-of-range value through.
    fields = ranged_fields()
    assert len(fields) > 100
    for cls, name, annotation in fields:
        instance = default_instance(cls)
        for value in refused_values(annotation, getattr(instance, name)):
            # The key is the field's dotted path, e.g. train.lr, or seed at the top level.
            with pytest.raises(ConfigError, match=rf"^(\w+\.)*{name} = "):
                dataclasses.replace(instance, **{name: value})


@pytest.mark.parametrize("tree, message", [
    ({"train": {"grad_clip": -1}}, "train.grad_clip = -1: expected a number > 0"),
    ({"task": {"aux_weight": math.nan}}, "task.aux_weight = nan: expected a number >= 0"),
    ({"train": {"lr": math.inf}}, "train.lr = inf: expected a number in (0, 1]"),
    ({"train": {"log_every": 0}}, "train.log_every = 0: expected an integer >= 1"),
    ({"seed": 2**63}, f"seed = {2**63}: expected an integer in [0, {2**63 - 1}]"),
    ({"data": {"train_days": -2}}, "data.train_days = -2: expected an integer >= 1"),
    ({"train": {"warmup_fraction": 1.0}}, "train.warmup_fraction = 1.0: expected a number in "
                                          "[0, 1)"),
    ({"model": {"name": "kaml", "rlu_gamma": 1.5}}, "model.rlu_gamma = 1.5: expected a number "
                                                    "in [0, 1]"),
    ({"model": {"name": "mmoe", "tower": {"dims": [8, 0]}}},
     "model.tower.dims = [8, 0]: expected a list of integers >= 1"),
])
def test_a_config_file_out_of_range_is_refused_naming_the_key(tree, message):
    from malt.runs.config import RunConfig

    with pytest.raises(ConfigError, match=re.escape(message)):
        RunConfig.from_dict(tree, source="run.toml")
