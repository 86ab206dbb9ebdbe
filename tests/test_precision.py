"""malt.precision: the autocast context, float32 losses, the up-front check of a precision on
a device, and `train.amp` of earlier runs read as the precision."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import get_args

import pytest
import torch

from malt import precision
from malt.errors import ConfigError
from malt.precision import (
    PRECISIONS,
    as_float32,
    autocast,
    check_precision,
    cpu_computes_bf16,
    cpu_flags,
)
from malt.runs.config import Precision, RunConfig, TrainConfig


def test_bf16_autocasts_matrix_products_and_fp32_leaves_them_alone():
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with autocast("bf16", "cpu"):
        assert (a @ b).dtype == torch.bfloat16
        assert torch.is_autocast_enabled("cpu")
    with autocast("fp32", torch.device("cpu")):
        assert (a @ b).dtype == torch.float32
        assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="'fp16'"):
        autocast("fp16", "cpu")


@dataclass
class _Outputs:
    logits: dict[str, torch.Tensor]
    knowledge: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    index: torch.Tensor | None = None


def test_as_float32_casts_every_floating_tensor_of_a_nested_output():
    low = torch.ones(3, dtype=torch.bfloat16)
    ids = torch.arange(3)
    out = as_float32(_Outputs(logits={"last": low}, knowledge={"first": [low, low]}, index=ids))
    assert isinstance(out, _Outputs)
    assert out.logits["last"].dtype == torch.float32
    assert [t.dtype for t in out.knowledge["first"]] == [torch.float32] * 2
    assert out.index.dtype == torch.int64
    assert as_float32((low, 2))[1] == 2 and as_float32((low,))[0].dtype == torch.float32


def test_a_bf16_result_cast_back_keeps_the_gradient_flowing():
    w = torch.randn(5, 1, requires_grad=True)
    with autocast("bf16", "cpu"):
        y = torch.randn(4, 5) @ w
    loss = as_float32(y).sum()
    assert loss.dtype == torch.float32
    loss.backward()
    assert w.grad is not None and w.grad.dtype == torch.float32


def test_the_cpu_flags_say_whether_bfloat16_is_native(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_computes_bf16(cpu_flags(info)) is True
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_tile amx_bf16\n")
    assert cpu_computes_bf16(cpu_flags(info)) is True
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\n")
    assert cpu_computes_bf16(cpu_flags(info)) is False
    assert cpu_flags(tmp_path / "missing") is None
    assert cpu_computes_bf16(None) is None


@pytest.mark.parametrize("flags, warned", [(frozenset({"avx2"}), True), (None, True),
                                           (frozenset({"avx512_bf16"}), False)])
def test_bf16_on_a_cpu_without_bfloat16_instructions_warns(monkeypatch, caplog, flags, warned):
    precision._warn_once.cache_clear()
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    with caplog.at_level(logging.WARNING, logger="malt.precision"):
        check_precision("bf16", "cpu")
        check_precision("fp32", "cpu")
    assert ("slower than float32" in caplog.text) is warned
    precision._warn_once.cache_clear()


def test_bf16_on_a_gpu_without_bfloat16_is_refused_and_fp32_never_looks(monkeypatch):
    def unread():
        raise AssertionError("the CPU's flags were read")

    monkeypatch.setattr(precision, "cpu_flags", unread)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation: False)
    with pytest.raises(ConfigError, match="this GPU has no bfloat16"):
        check_precision("bf16", "cuda")
    check_precision("fp32", "cuda")
    check_precision("fp32", "cpu")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation: True)
    check_precision("bf16", "cuda")
    with pytest.raises(ConfigError, match="unknown precision 'fp16', expected one of"):
        check_precision("fp16", "cpu")


def test_the_typed_option_spells_the_precisions_autocast_takes():
    assert get_args(Precision) == PRECISIONS
    assert TrainConfig().precision == "fp32"


@pytest.mark.parametrize("amp, expected", [(True, "bf16"), (False, "fp32")])
def test_the_runs_of_earlier_versions_read_amp_as_the_precision(amp, expected):
    raw = {"seed": 3, "train": {"lr": 0.01, "amp": amp}}
    assert RunConfig.from_dict(raw).train.precision == expected
    assert raw["train"]["amp"] is amp  # the caller's table is not changed
    with pytest.raises(ConfigError, match="train.amp is the old name of train.precision"):
        RunConfig.from_dict({"train": {"amp": True, "precision": "fp32"}})
    with pytest.raises(ConfigError, match="run.toml: train.amp = 'yes'"):
        RunConfig.from_dict({"train": {"amp": "yes"}}, source="run.toml")


def test_a_bf16_run_on_a_gpu_without_bfloat16_is_refused_before_anything_starts(monkeypatch):
    from malt.training import builder

    monkeypatch.setattr(builder, "resolve_device", lambda name: "cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation: False)
    monkeypatch.setattr(builder, "init_world", lambda device: (_ for _ in ()).throw(
        AssertionError("the run started")))
    with pytest.raises(ConfigError, match="this GPU has no bfloat16"):
        builder.build_run(RunConfig.from_dict({"train": {"precision": "bf16"}}))
