"""Study presets: how big, how many settings, which models and targets.

* `smoke`: every study on the `tiny` simulated set in minutes on a laptop CPU (CI runs
  `malt study main --preset smoke`): narrow model, batches of 512, one learning rate (1e-2)
  and the reference λ for the tuned runs, a 2 × 2 grid for the `search` study, greedy
  selection for MoAE on last-click only, one seed, one run per CPU core.
* `small`: the results committed under `docs/results/`: the `small` simulated set (about 1M
  clicks, 10 training days), the paper's batch 4096 and released model, lr 3e-3 and the
  reference λ for the tuned runs (no search), a 2 × 2 grid for the `search` study (BASE and MoAE
  on last-click), greedy selection for MoAE on last- and first-click, one seed, one
  single-threaded run per CPU core.
* `paper`: the MAC paper's protocol: batch 4096, the model as released (`reference` preset),
  the full grids lr ∈ {0.1x, x, 10x | x ∈ {3e-3, 3.5e-3, 4e-3}} × λ ∈ {0.1, 0.2, 0.3, 0.4}
  chosen on the validation day, greedy selection for every multi-task model and target, and a
  21-day simulated set when no data is given (pass `--data` for the MAC release).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from malt.errors import ConfigError
from malt.train.config import RunConfig

MODELS = ("base", "shared_bottom", "mmoe", "ple", "home", "natal", "moae")
TARGETS = ("last", "first", "mta", "linear")
"""The MAC labels in the order of the paper's tables (mta is DDA)."""
PAPER_LR_BASES = (3e-3, 3.5e-3, 4e-3)
PAPER_LR_FACTORS = (0.1, 1.0, 10.0)
PAPER_AUX_WEIGHTS = (0.1, 0.2, 0.3, 0.4)


def paper_lrs(bases=PAPER_LR_BASES, factors=PAPER_LR_FACTORS) -> tuple[float, ...]:
    """{f·x | f ∈ factors, x ∈ bases}, ascending, rounded to clean decimals."""
    return tuple(sorted({float(f"{f * x:.6g}") for f in factors for x in bases}))


@dataclass(frozen=True)
class Preset:
    """Everything a study needs besides the data and the output directory."""

    name: str
    sim_size: str
    """Simulated size written when no `--data` is given."""
    models: tuple[str, ...] = MODELS
    targets: tuple[str, ...] = TARGETS
    lrs: tuple[float, ...] = (3e-3,)
    """Learning rates of the tuned runs (searched on the validation day when more than one
    setting)."""
    aux_weights: tuple[float | None, ...] = (None,)
    """λ values of the tuned runs; None = the reference λ of the target."""
    search_lrs: tuple[float, ...] | None = None
    """Grid of the `search` study (None: `lrs`)."""
    search_aux_weights: tuple[float | None, ...] | None = None
    lr: float = 3e-3
    """Learning rate of the fixed-setting runs (greedy selection)."""
    search_models: tuple[str, ...] = MODELS
    search_targets: tuple[str, ...] = TARGETS
    """Problems of the `search` study."""
    greedy_models: tuple[str, ...] = ("moae",)
    greedy_targets: tuple[str, ...] = ("last",)
    """Problems of the `greedy` study."""
    seeds: int = 1
    cpu_jobs: int | None = 1
    """Parallel runs on CPU when --jobs is not given; None = one per usable core (one torch
    thread each: small models train faster side by side than on shared threads)."""
    train: dict[str, Any] = field(default_factory=dict)
    """`[train]` keys of every run."""
    model: dict[str, Any] = field(default_factory=lambda: {"release_defaults": True})
    """`[model]` keys of every run besides the name."""

    def run_config(self, *, data: str, model: str, main: str, aux: tuple[str, ...],
                   lr: float, aux_weight: float | None, seed: int, split: str = "test",
                   grad_method: str = "none", device: str = "auto",
                   schema: str | None = None) -> RunConfig:
        """The `RunConfig` of one run under this preset."""
        return RunConfig.from_dict({
            "seed": seed,
            "data": {"path": data, "schema": schema, "eval_split": split},
            "task": {"main": main, "aux": list(aux), "aux_weight": aux_weight},
            "train": {**self.train, "lr": lr, "grad_method": grad_method, "device": device},
            "model": {**self.model, "name": model},
        }, source=f"preset '{self.name}'")


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        name="smoke", sim_size="tiny", lrs=(1e-2,), lr=1e-2,
        search_lrs=(3e-3, 1e-2), search_aux_weights=(0.1, 0.3),
        search_models=("base", "moae"), search_targets=("last",), cpu_jobs=None,
        train={"batch_size": 512, "log_every": 1000},
        model={"release_defaults": True,
               "encoder": {"embed_dim": 8, "attention_heads": 2, "simtier_bins": 16},
               "expert": {"dim": 32, "se_group_size": None}, "tower": {"dims": [32, 16]}},
    ),
    "small": Preset(
        name="small", sim_size="small",
        search_lrs=(1e-3, 3e-3), search_aux_weights=(0.1, 0.3),
        search_models=("base", "moae"), search_targets=("last",),
        greedy_targets=("last", "first"), cpu_jobs=None,
        train={"batch_size": 4096, "log_every": 1000},
    ),
    "paper": Preset(
        name="paper", sim_size="medium",
        lrs=paper_lrs(), aux_weights=PAPER_AUX_WEIGHTS,
        greedy_models=MODELS[1:], greedy_targets=TARGETS,
        train={"batch_size": 4096},
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ConfigError(f"unknown study preset '{name}', expected one of {list(PRESETS)}")
    return PRESETS[name]
