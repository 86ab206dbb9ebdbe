"""Study presets: how big a study is, for each family of studies.

A preset (`smoke`, `small`, `paper`, `own-data`) sizes every study at once: `mac` for the MAC
paper's studies (multi-attribution data), `kaml` for the KAML paper's (incomplete multi-label
data).

MAC studies:
* `smoke`: every study on the `tiny` simulated set in minutes on a laptop CPU (CI runs
  `malt study main --preset smoke`): narrow model, batches of 512, one learning rate (1e-2)
  and the reference λ for the tuned runs, a 2 × 2 grid for the `search` study, greedy
  selection for MoAE on last-click only, one seed, one run per CPU core.
* `small`: the results committed under `docs/results/`: the `small` simulated set (about 1M
  clicks, 10 training days), the paper's batch 4096 and released model, lr 3e-3 and the
  reference λ for the tuned runs (no search), a 2 × 2 grid for the `search` study (BASE and MoAE
  on last-click), greedy selection for MoAE on last- and first-click, one seed, one
  single-threaded run per CPU core.
* `paper`: the MAC paper's protocol: batch 4096, the model with the release's defaults, the
  full grids lr ∈ {0.1x, x, 10x | x ∈ {3e-3, 3.5e-3, 4e-3}} × λ ∈ {0.1, 0.2, 0.3, 0.4}
  chosen on the validation day, greedy selection for every multi-task model and target, and a
  21-day simulated set when no data is given (pass `--data` for the MAC release).
* `own-data`: a study of one's own data (the default when `--data` has a schema of its own):
  malt's own model defaults (`malt train`'s, reference widths, without the release's quirks),
  `--batch-size auto`, a 3 × 2 grid lr ∈ {1e-3, 3e-3, 1e-2} × λ ∈ {0.1, 0.3} chosen on the
  validation days, three seeds, one run per CPU core; the `small` simulated set when no data
  is given.

On data with a schema of its own (neither the MAC release's nor a simulator's), every preset
trains with malt's model defaults: the release's quirks (`release_defaults`) are for results
comparable with the paper on MAC.

KAML study: `smoke` the tiny app-promotion simulation, minutes on a CPU; `small` the committed
study (one pass over ten days of ~50k clicks at batch 512, three seeds); `paper` the paper's
protocol (Adam, lr 1e-3, batch 5000, five seeds) on four simulated weeks; `own-data` malt's
model defaults, lr 1e-3 and `--batch-size auto`, three seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from malt.config_files import merge_tables
from malt.errors import ConfigError

MODELS = ("base", "shared_bottom", "mmoe", "ple", "home", "natal", "moae")
TARGETS = ("last", "first", "mta", "linear")
"""The MAC labels in the order of the paper's tables (mta is DDA)."""
PAPER_LR_BASES = (3e-3, 3.5e-3, 4e-3)
PAPER_LR_FACTORS = (0.1, 1.0, 10.0)
PAPER_AUX_WEIGHTS = (0.1, 0.2, 0.3, 0.4)
KAML_MODELS = ("single_task", "shared_bottom", "star", "mmoe", "ple", "taml", "kaml")
"""Table 2 of the KAML paper, in its order."""


def paper_lrs(bases=PAPER_LR_BASES, factors=PAPER_LR_FACTORS) -> tuple[float, ...]:
    """{f·x | f ∈ factors, x ∈ bases}, ascending, rounded to clean decimals."""
    return tuple(sorted({float(f"{f * x:.6g}") for f in factors for x in bases}))


@dataclass(frozen=True)
class Setup:
    """What every run of a family of studies shares."""

    sim_size: str
    """Simulated size written when no `--data` is given."""
    seeds: int = 1
    cpu_jobs: int | None = 1
    """Parallel runs on CPU when --jobs is not given; None = one per usable core (one torch
    thread each: small models train faster side by side than on shared threads)."""
    train: dict[str, Any] = field(default_factory=dict)
    """`[train]` keys of every run."""
    task: dict[str, Any] = field(default_factory=dict)
    """`[task]` keys of every run besides the views and λ (e.g. ADM's options)."""
    model: dict[str, Any] = field(default_factory=dict)
    """`[model]` options of every run."""
    per_model: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Options of single models, on top of `model` (a field only that model has)."""
    models: tuple[str, ...] = MODELS
    lr: float = 3e-3
    """Learning rate of the fixed-setting runs."""

    def model_options(self, name: str) -> dict[str, Any]:
        return merge_tables(self.model, self.per_model.get(name, {}))


@dataclass(frozen=True)
class MacSetup(Setup):
    """The MAC studies: also the targets and the lr × λ grids."""

    targets: tuple[str, ...] = TARGETS
    lrs: tuple[float, ...] = (3e-3,)
    """Learning rates of the tuned runs (searched on the validation day when more than one
    setting)."""
    aux_weights: tuple[float | None, ...] = (None,)
    """λ values of the tuned runs; None = the reference λ of the target."""
    search_lrs: tuple[float, ...] | None = None
    """Grid of the `search` study (None: `lrs`)."""
    search_aux_weights: tuple[float | None, ...] | None = None
    search_models: tuple[str, ...] = MODELS
    search_targets: tuple[str, ...] = TARGETS
    """Problems of the `search` study."""
    greedy_models: tuple[str, ...] = ("moae",)
    greedy_targets: tuple[str, ...] = ("last",)
    """Problems of the `greedy` study."""


@dataclass(frozen=True)
class Preset:
    """A size of every study."""

    name: str
    mac: MacSetup
    kaml: Setup


KAML_MODEL = {"encoder": {"embed_dim": 16}, "expert": {"dim": 128}, "tower": {"dims": [64, 32]}}
FOUR_EXPERTS = {"mmoe": {"experts": 4}, "kaml": {"experts": 4}}

PresetName = Literal["smoke", "small", "paper", "own-data"]
PRESETS: dict[PresetName, Preset] = {
    "smoke": Preset("smoke", mac=MacSetup(
        sim_size="tiny", lrs=(1e-2,), lr=1e-2,
        search_lrs=(3e-3, 1e-2), search_aux_weights=(0.1, 0.3),
        search_models=("base", "moae"), search_targets=("last",), cpu_jobs=None,
        train={"batch_size": 512, "log_every": 1000},
        model={"release_defaults": True,
               "encoder": {"embed_dim": 8, "attention_heads": 2, "simtier_bins": 16},
               "expert": {"dim": 32, "se_group_size": None}, "tower": {"dims": [32, 16]}}),
        kaml=Setup(
            sim_size="tiny", seeds=2, cpu_jobs=None, models=KAML_MODELS, lr=3e-3,
            train={"batch_size": 256, "log_every": 1000},
            model={"encoder": {"embed_dim": 8}, "expert": {"dim": 32},
                   "tower": {"dims": [16, 8]}},
            per_model={"taml": {"learners": 2}})),
    "small": Preset("small", mac=MacSetup(
        sim_size="small", search_lrs=(1e-3, 3e-3), search_aux_weights=(0.1, 0.3),
        search_models=("base", "moae"), search_targets=("last",),
        greedy_targets=("last", "first"), cpu_jobs=None,
        train={"batch_size": 4096, "log_every": 1000}, model={"release_defaults": True}),
        kaml=Setup(sim_size="small", seeds=3, cpu_jobs=None, models=KAML_MODELS, lr=3e-3,
                   train={"batch_size": 512, "log_every": 1000},
                   model=KAML_MODEL, per_model=FOUR_EXPERTS)),
    "paper": Preset("paper", mac=MacSetup(
        sim_size="medium", lrs=paper_lrs(), aux_weights=PAPER_AUX_WEIGHTS,
        greedy_models=MODELS[1:], greedy_targets=TARGETS, train={"batch_size": 4096},
        model={"release_defaults": True}),
        kaml=Setup(sim_size="medium", seeds=5, cpu_jobs=1, models=KAML_MODELS, lr=1e-3,
                   train={"batch_size": 5000, "embedding_lr_scale": 1.0, "log_every": 1000},
                   model=KAML_MODEL, per_model=FOUR_EXPERTS)),
    "own-data": Preset("own-data", mac=MacSetup(
        sim_size="small", seeds=3, cpu_jobs=None, lrs=(1e-3, 3e-3, 1e-2),
        aux_weights=(0.1, 0.3)),
        kaml=Setup(sim_size="small", seeds=3, cpu_jobs=None, models=KAML_MODELS, lr=1e-3)),
}
OWN_DATA = "own-data"
"""The preset of a study on data with a schema of its own."""
DEFAULT_PRESET = "smoke"
"""The preset of a study on the MAC release or a simulated set when none is named."""


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ConfigError(f"unknown study preset '{name}', expected one of {list(PRESETS)}")
    return PRESETS[name]
