"""What a user asks of `malt study`: one typed option set, whose fields are the command's flags.

`StudyChoices` are the choices every run of a study follows (models, targets, grids, the
user's run settings); the `Study` holds them as they are. `StudyOptions` adds what picks and
places the study (its name, preset, data, output, seeds, backend). The module needs no torch,
so that `malt study --help` lists the choices without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

from malt.experiments.presets import PresetName
from malt.file_names import check_file_name
from malt.runs.config import DEFAULT_SEED, Device, GradMethod, LabelMode, LearningRate
from malt.typed_fields import NonNegativeFloat, PositiveFloat, PositiveInt, Seed, validate

SelectMetric = Literal["gauc", "auc", "logloss"]
"""The validation metric a search selects on."""

StudyName = Literal["main", "aux-metrics", "aux-targets", "params", "atl", "labels", "groups",
                    "search", "greedy", "grad-methods", "kaml", "delay"]
STUDY_NAMES = get_args(StudyName)
ALL = "all"
"""Every study of the MAC paper in turn (not `grad-methods`, which goes beyond it)."""
StudyChoice = Literal[StudyName, "all"]
BackendName = Literal["local", "ray"]
REFERENCE = "ref"
"""The λ of the grid that stands for the target's reference λ."""
AuxWeight = NonNegativeFloat | Literal["ref"] | None
"""A λ of the grid; `ref` (kept as None) is the target's reference λ."""


@dataclass(frozen=True, kw_only=True)
class StudyChoices:
    """What every run of a study follows: the models, targets and grids chosen, and the user's
    run settings (None: the study's and the preset's)."""

    models: tuple[str, ...] | None = None
    """Models (default: the study's)."""
    targets: tuple[str, ...] | None = None
    """Target labels (default: the study's that are labels of the data, else every label)."""
    aux: tuple[str, ...] | None = None
    """The auxiliary set of the tuned runs and the candidates of greedy selection, instead of
    the reference grid: other labels of the data and/or `cat`."""
    lrs: tuple[LearningRate, ...] | None = None
    """Learning rates of the grid (replaces the preset's)."""
    aux_weights: tuple[AuxWeight, ...] | None = field(default=None, metadata={"metavar": "λ"})
    """λ values of the grid; `ref` = the target's reference λ."""
    label_modes: tuple[LabelMode, ...] | None = None
    """Label modes the search tries for runs with auxiliary views: `binary` (weight > 0, the
    papers') and/or `weighted` (the attribution weights); default: the preset's mode only."""
    select_metric: SelectMetric = "gauc"
    """Validation criterion of the lr × λ search: the main view's GAUC (the MAC paper's), AUC
    or logloss."""
    validation_seeds: PositiveInt | None = None
    """Seeds the search's leading settings are validated on, selected on their mean by the
    one-standard-error rule (default: the study's seed count)."""
    grad_methods: tuple[GradMethod, ...] | None = None
    """grad-methods: the methods compared with the plain sum (`none`), each with the plain
    run's setting (default: every one whose packages are installed)."""
    dwa_period: PositiveInt | None = None
    """grad-methods: DWA's period in steps (`--dwa-period` of its runs; default: a tenth of a
    run's steps, so that its weights move from a fifth of the pass on)."""
    baselines: tuple[str, ...] | None = None
    """kaml: RelaImpr baseline models (default: the multi-task ones)."""
    delay_window_days: PositiveFloat = 7.0
    """delay: the attribution window in days; `wait` trains on the days whose newest click is
    at least this long before the last training click (7: the simulator's window)."""
    jobs: PositiveInt | None = None
    """Parallel runs (default: one per GPU when CUDA devices are visible; on CPU one per core
    for smoke, 1 for paper)."""
    device: Device = "auto"
    """Where the runs train: `auto` takes CUDA when it is available."""
    overrides: dict[str, Any] = field(default_factory=dict, metadata={"flag": None})
    """A run-config tree applied to every run over the preset's settings (set by the flags of
    the run config that `malt study` takes: --schema, --batch-size, --model-option ...)."""

    def __post_init__(self) -> None:
        if self.aux_weights is not None:  # `ref` is the reference λ: None, as in a `Setting`
            object.__setattr__(self, "aux_weights", tuple(
                None if w == REFERENCE else w for w in self.aux_weights))

    def study_choices(self) -> dict[str, Any]:
        """The fields of `StudyChoices`, by name (what a `Study` takes of the options)."""
        return {f.name: getattr(self, f.name) for f in fields(StudyChoices)}


@dataclass(frozen=True, kw_only=True)
class StudyOptions(StudyChoices):
    """What a user asks of `malt study`."""

    names: tuple[StudyChoice, ...] = field(metadata={"flag": "name"})
    """The study (see docs/studies.md; kaml: the KAML paper's tables, docs/kaml.md; delay: the
    delayed-feedback methods, docs/results/delay); `all` runs every MAC study in turn."""
    preset: PresetName | None = None
    """smoke: tiny simulated set, minutes on a CPU; small: the small simulated set, the tables
    in docs/results (hours on a CPU); paper: the full protocol; own-data: malt's model defaults
    and a lr × λ grid over three seeds, for one's own data. Default: own-data when --data has a
    schema of its own, else smoke."""
    data: Path | None = None
    """Data directory in the MAC layout (default: a simulated set in OUT/data, written when
    missing)."""
    out: Path | None = None
    """Output directory (default studies/<preset>, studies/kaml-<preset> for kaml)."""
    seeds: PositiveInt | None = None
    """Seeds per cell (default: the preset's)."""
    seed: Seed = DEFAULT_SEED
    """Random seed of the first run of each cell (seeds are SEED, SEED+1, ...) and of the
    simulation."""
    shuffle: bool = False
    """Shuffle the rows within each training day (the paper's protocol reads them in file
    order); recorded in the tables' notes."""
    backend: BackendName = "local"
    """Where the runs train: local processes, or Ray tasks (malt[ray]; each run asks for its
    share of a node's cores, or a GPU)."""
    address: str | None = None
    """--backend ray: the cluster to join (`auto`, ray://host:port); the output and data must
    then be on a file system every node shares (default: start a local Ray instance on this
    machine's cores)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        validate(self, "")
        # Targets name the cells' run directories; auxiliary views their files.
        for key, names in (("--targets", self.targets), ("--aux", self.aux)):
            for name in names or ():
                check_file_name(name, key)
