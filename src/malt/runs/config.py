"""Typed run configuration: dataclasses are the source of truth, files fill them, flags override.

A config file (TOML, YAML or JSON) has the sections of `RunConfig`:

    seed = 2026
    [data]
    path = "data/sim"
    [task]
    main = "last"
    aux = ["first", "linear", "mta", "cat"]
    aux_weight = 0.3
    [train]
    lr = 3e-3
    [init]                     # a warm start (none: a fresh model)
    from_run = "runs/day-07"
    optimiser = true
    [model]
    name = "moae"
    release_defaults = false   # true: start from the public release's settings
    knowledge_detach = true    # any other key is an option of the model's config class
    [model.encoder]            # ... blocks included (see `malt.models.config`)
    embed_dim = 8

Every value is checked against its field's type (`malt.typed_fields`), ranges included: `lr =
"fast"`, `lr = nan`, `grad_clip = -1` or `shuffle = "no"` is an error naming the key, the value
and what was expected, and an unknown key is an error that names the closest valid one. The
resolved config is saved in every run directory, so a run can be reproduced from it alone; the
keys of earlier versions that were renamed are read under their new names (`upgraded`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from malt.config_files import merge_tables, read_key_value_file
from malt.data.as_of import parse_as_of
from malt.data.task import (
    AdmWindow,
    DelayCorrection,
    LabelMode,
    Mask,
    Task,
    default_aux_weight,
)
from malt.errors import ConfigError
from malt.file_names import check_file_name
from malt.typed_fields import (
    Between,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Range,
    Seed,
    build,
    check_value,
    validate,
)

if TYPE_CHECKING:
    from malt.models import ModelConfig, ModelSpec

LearningRate = Annotated[float, Range(low=0, low_open=True, high=1)]
"""A learning rate of Adam: in (0, 1]."""

DEFAULT_SEED = 2026
"""The seed of every command that takes one, when none is given."""
MODEL_KEYS = ("name", "release_defaults")
"""Keys of `[model]` that choose the model; every other key is an option of its config."""
Device = Literal["auto", "cpu", "cuda"]
GradMethod = Literal["none", "gcs", "pcgrad", "uncertainty", "dwa", "gcs-ema", "upgrad", "mgda",
                     "cagrad"]
LOSS_WEIGHTING_METHODS = ("none", "uncertainty", "dwa")
"""Grad methods with one backward pass of a weighted loss (the others take per-task gradients)."""
GradVariant = Literal["paper", "reference"]
GcsWeighting = Literal["sigmoid", "clip", "binary"]
EvalSplit = Literal["test", "validation"]
TrackerName = Literal["none", "mlflow"]
TableOptimizer = Literal["rows", "dense", "lazy"]
Precision = Literal["fp32", "bf16"]
"""fp32: float32 throughout; bf16: bfloat16 autocast around the forward pass (`malt.precision`)."""


@dataclass
class DataConfig:
    """Where the data is and which days are used."""

    path: str | None = field(default=None, metadata={"flag": "--data"})
    """Data directory in the MAC layout."""
    schema: str | None = None
    """Schema file; None: the data set's own `schema.toml` if it has one, else MAC's."""
    cache: str | None = None
    """Cache directory; None means `<path>/.malt_cache`."""
    train_from: str | None = None
    """First training day: its name (the day file's name without `.parquet`, such as a date
    `2026-12-06` or `train-03`) or, when no day has that name, its index (0 = the first
    training day); None: the first."""
    train_days: PositiveInt | None = None
    """Use only N training days from `train_from` on (None: all); at most the days the data
    has."""
    eval_split: EvalSplit = "test"
    """`test`: train on all training days, evaluate on the test days. `validation`: hold out the
    last training days for evaluation and train on the days before them (the paper's protocol
    holds out one)."""
    validation_days: PositiveInt = 1
    """Training days the validation protocol holds out (the last ones)."""
    as_of: str | None = None
    """Train on the labels known at this time (unix seconds or an ISO-8601 date-time, UTC
    unless it names its offset): a click whose conversion came later is a negative. Needs the
    labels' known-at columns; evaluation keeps the matured labels. None: the matured labels."""

    def __post_init__(self) -> None:
        validate(self, "data")
        if self.as_of is not None:  # a time that does not parse is refused here
            parse_as_of(self.as_of, "data.as_of")

    @property
    def as_of_seconds(self) -> float | None:
        """`as_of` in unix seconds (None: no cut)."""
        return None if self.as_of is None else parse_as_of(self.as_of, "data.as_of")


@dataclass
class TaskConfig:
    """What is learned (see `malt.data.task.Task`)."""

    main: str = "last"
    """The main view: the target attribution label."""
    aux: list[str] = field(default_factory=list)
    """Auxiliary views: other labels of the data and/or `cat` (the Cartesian view)."""
    aux_weight: NonNegativeFloat | None = None
    """λ (>= 0); None means the model's own default (1 for the KAML setting's models) or else the
    reference value for the main view (last 0.3, first 0.1, mta 0.3, linear 0.2; 0.3
    otherwise)."""
    label_mode: LabelMode = "binary"
    """Targets are the labels binarised (weight > 0, as the paper) or the attribution weights
    clipped to [0, 1] (`weighted`)."""
    mask: Mask = "none"
    """Training mask for incomplete labels: `none` (every label), `base` (target action only),
    `adm` (attribution-driven), `reported` (the campaign's reported actions), `oracle` (true
    labels); see `malt.data.masks`."""
    delay_correction: DelayCorrection = "none"
    """Delayed-feedback correction of every binary view's loss: `none` (the labels as they are:
    naive under `data.as_of`), `fnw` (fake-negative weighting) or `fnc` (fake-negative
    calibration), after Ktena et al. 2019, or `dfm` (Chapelle 2014's delayed-feedback model);
    needs the labels' known-at columns, and `dfm` the click times and `data.as_of`. See
    docs/training.md, "Delayed feedback"."""
    entire_space: bool = False
    """Train over every impression (ESMM, Ma et al. 2018): a CTR head beside the views, each
    view's pCVR × pCTR fitted to click ∧ conversion on all impressions, the CTR head to the
    clicks. Needs data whose schema names a `click_column`; see docs/models.md."""
    adm_window: AdmWindow = "trailing"
    """ADM counts over the `adm_window_days` training days before each day (`trailing`) or over
    every training day (`static`)."""
    adm_window_days: PositiveInt = 7
    """Days of ADM's trailing window."""
    adm_alpha: NonNegativeFloat = 10.0
    """ADM threshold α_j on a campaign's reported conversions of action j (every action)."""
    adm_alpha_per_action: dict[str, NonNegativeFloat] = field(default_factory=dict,
                                                   metadata={"flag": "--adm-alpha-for"})
    """ADM threshold of one action, overriding `adm_alpha`, e.g. {payment = 3}."""

    def __post_init__(self) -> None:
        validate(self, "task")
        # Views name a run's files (`reliability-<view>.png`) and a study's run directories.
        for key, view in [("task.main", self.main), *(("task.aux", v) for v in self.aux)]:
            check_file_name(view, key)


@dataclass
class TrainConfig:
    """How the model is optimised."""

    lr: LearningRate = 3e-3
    """Learning rate of Adam (at most 1: each step moves a parameter by up to about lr)."""
    embedding_lr_scale: Annotated[float, Range(low=0, low_open=True, high=1000)] = 10.0
    """Embedding tables train at `lr * embedding_lr_scale` (10x in the MAC protocol; at most
    1000, so that the tables' step stays a float32)."""
    batch_size: PositiveInt | Literal["auto"] = "auto"
    """Rows per optimiser step (over all processes); `auto`: the largest of 256 ... 4096 that
    gives one pass at least 200 steps (4096, the MAC protocol's, on any large data set)."""
    warmup_fraction: Annotated[float, Between(0, 1, high_open=True)] = 0.05
    """Linear warm-up over this fraction of the real number of training steps, then constant."""
    warmup_start: Annotated[float, Between(0, 1)] = 1e-4
    """Learning-rate factor at the first warm-up step."""
    grad_clip: PositiveFloat | None = None
    """Clip the global gradient norm to this value (None: no clipping)."""
    grad_method: GradMethod = "none"
    """How the tasks are combined: `none` (λ-weighted sum); loss weightings `uncertainty`,
    `dwa`; gradient methods `gcs`, `pcgrad` (`malt.training.grad_methods`), `gcs-ema`, and
    torchjd's aggregators `upgrad`, `mgda`, `cagrad` (`pip install 'malt[aux]'`). See
    docs/training.md."""
    grad_variant: GradVariant = "paper"
    """`paper`: MAC App. C on shared parameters; `reference`: the public release's behaviour
    (of GCS and PCGrad; the other methods refuse it)."""
    gcs_weighting: GcsWeighting = "sigmoid"
    """GCS weight of an auxiliary task from its gradient's cosine with the main one: `sigmoid`
    (MAC App. C; λ unused), `clip` (max(0, cos)) or `binary` (cos > 0), both scaled by λ."""
    gcs_ema_decay: Annotated[float, Between(0, 1, high_open=True)] = 0.99
    """`gcs-ema`: decay β of the moving average of the cosines (0: the step's own cosine)."""
    dwa_temperature: PositiveFloat = 2.0
    """`dwa`: temperature τ of the softmax over the loss ratios (the paper's 2)."""
    dwa_period: PositiveInt = 100
    """`dwa`: steps of one period, whose mean losses stand for the paper's epoch losses."""
    cagrad_c: Annotated[float, Between(0, 1, high_open=True)] = 0.5
    """`cagrad`: radius c of the ball around the mean gradient (the paper's 0.5)."""
    shuffle: bool = False
    """Shuffle rows within each day (seeded); the MAC protocol reads days in file order."""
    device: Device = "auto"
    """Where to train: `auto` takes CUDA when it is available."""
    precision: Precision = "fp32"
    """`bf16`: the forward passes (training, and scoring the evaluation days) under bfloat16
    autocast, on the CPU and on CUDA; the parameters, Adam's state and the losses stay float32.
    Slower than `fp32` on a CPU without AVX512_BF16 or AMX (the run warns). See
    docs/training.md."""
    compile: bool = False
    """Run the model's forward pass through `torch.compile` (the embedding lookups stay eager);
    the first call compiles it (about a minute on 2 CPU cores), and a run whose compilation fails
    warns and trains eagerly. Same numbers as eager within float rounding; see docs/training.md
    for when it pays."""
    table_optimizer: TableOptimizer = "rows"
    """How the embedding tables are updated. `rows`: sparse gradients and row-wise Adam, dense
    Adam's numbers at the cost of the rows a batch touched (on CUDA and with GCS or PCGrad it is
    `dense`); `dense`: dense gradients and Adam over every row; `lazy`: sparse gradients and
    torch's SparseAdam, which does not decay the moments of rows between their touches
    (different numbers). See docs/training.md."""
    log_every: PositiveInt = 50
    """Steps between loss logs (progress bar, TensorBoard and the tracker)."""
    tracker: TrackerName = "none"
    """Experiment tracker besides TensorBoard (always on): `mlflow` logs the config, the
    step losses, the evaluation and the run's files to MLflow (`pip install 'malt[mlflow]'`)."""
    tracking_uri: str | None = None
    """MLflow tracking URI (a server, `sqlite:///...`, `file:...`); None: $MLFLOW_TRACKING_URI,
    else the file store `./mlruns` (made absolute when the run starts)."""
    mlflow_experiment: str = "malt"
    """MLflow experiment of the run (created when missing)."""

    def __post_init__(self) -> None:
        validate(self, "train")


InitNumeric = Literal["parent", "refit"]


@dataclass
class InitConfig:
    """Where a warm-started run starts from (see docs/training.md, "Warm start")."""

    from_run: str | None = field(default=None, metadata={"flag": "--init-from"})
    """A finished run whose weights this run starts from (None: a fresh model). Its schema
    and task must be this run's."""
    optimiser: bool = field(default=False, metadata={"flag": "--init-optimiser"})
    """Also take the parent's optimiser state, schedule position and random states: the run
    continues the parent's pass (else Adam starts afresh, with its warm-up)."""
    numeric: InitNumeric = field(default="parent", metadata={"flag": "--init-numeric"})
    """Standardisation of the numeric columns: the parent's statistics (`parent`), or those
    of this run's training days (`refit`)."""
    min_count: PositiveInt = field(default=1, metadata={"flag": "--init-min-count"})
    """The vocabs grow by the new ids seen at least this many times in this run's training
    days; rarer ones map to the out-of-vocabulary row (as `prepare --min-count`), so that
    daily runs do not add a row for every id seen once."""

    def __post_init__(self) -> None:
        validate(self, "init")
        if self.from_run is None and (self.optimiser or self.numeric != "parent"
                                      or self.min_count != 1):
            raise ConfigError("init.optimiser, init.numeric and init.min_count apply to a warm "
                              "start: give the parent run (--init-from RUN)")


@dataclass
class RunConfig:
    """Everything that defines one training run."""

    seed: Seed = DEFAULT_SEED
    """Seeds the model's initial parameters, the row shuffle and PCGrad's task order; the same
    seed gives the same numbers on the CPU (0 <= seed < 2**63)."""
    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    init: InitConfig = field(default_factory=InitConfig)
    model: dict[str, Any] = field(default_factory=lambda: {"name": "base",
                                                           "release_defaults": False},
                                  metadata={"flag": None})
    """`name`, `release_defaults` (start from the public release's settings, see
    `malt.models.config`) and the options of the model's own config class (flags: `--model`,
    `--release-defaults`, `--model-option`)."""

    def __post_init__(self) -> None:
        validate(self, "")
        if self.train.gcs_weighting != "sigmoid" and (self.train.grad_method != "gcs" or
                                                      self.train.grad_variant != "paper"):
            raise ConfigError("train.gcs_weighting applies to grad_method 'gcs' with "
                              "grad_variant 'paper' (the release weighs by sigmoid only)")
        self._check_grad_method_options()
        if self.train.table_optimizer == "lazy" and \
                self.train.grad_method not in LOSS_WEIGHTING_METHODS:
            *others, last = (repr(m) for m in LOSS_WEIGHTING_METHODS)
            raise ConfigError(f"train.table_optimizer 'lazy' works with grad_method "
                              f"{', '.join(others)} or {last} only: "
                              f"'{self.train.grad_method}' needs dense per-task gradients of "
                              "the embeddings")
        self.model.setdefault("name", "base")
        self.model.setdefault("release_defaults", False)
        check_value("model.name", self.model["name"], str)
        check_value("model.release_defaults", self.model["release_defaults"], bool)
        self.model_config()  # the options are checked against the model's config class
        if self.task.aux and not self.model_spec.traits.uses_aux:
            raise ConfigError(f"model '{self.model['name']}' has no head for auxiliary views, "
                              f"so task.aux {self.task.aux} would train nothing; train it "
                              "without auxiliary views, or pick a multi-task model (see "
                              "`malt models`)")
        self._check_grad_method_model()
        if self.task.entire_space:
            self._check_entire_space()

    def _check_entire_space(self) -> None:
        """Refuse up front what entire-space training does not combine with: the task's
        views, mask and delay correction (`Task`), and a model with a loss of its own."""
        from malt.models.entire_space import check_entire_space_model

        build_task(self)
        check_entire_space_model(self.model_spec.model, self.model["name"])

    def _check_grad_method_options(self) -> None:
        """Refuse an option of one grad method given (not at its default) with another; the
        variant goes with 'none' too, as a study sets it for its plain runs as well."""
        defaults = TrainConfig()
        owners = {"grad_variant": ("none", "gcs", "pcgrad"), "gcs_ema_decay": ("gcs-ema",),
                  "dwa_temperature": ("dwa",), "dwa_period": ("dwa",), "cagrad_c": ("cagrad",)}
        for name, methods in owners.items():
            value = getattr(self.train, name)
            if value != getattr(defaults, name) and self.train.grad_method not in methods:
                raise ConfigError(f"train.{name} applies to grad_method "
                                  f"{' or '.join(repr(m) for m in methods)}, not "
                                  f"'{self.train.grad_method}'")

    def _check_grad_method_model(self) -> None:
        """Refuse a grad method on a model it cannot act on: one without auxiliary heads (BASE
        trains the main view alone), a run that trains no auxiliary loss (λ = 0, or no auxiliary
        view and no auxiliary term of the model's own, such as MoAE's self-auxiliary or KAML's
        ranking term: every method would be the plain step), or a model whose views share no
        parameter."""
        method = self.train.grad_method
        if method == "none":
            return
        name, traits = self.model["name"], self.model_spec.traits
        if not traits.uses_aux:
            raise ConfigError(f"train.grad_method '{method}' combines the main loss with the "
                              f"auxiliary views' losses, and model '{name}' has no auxiliary "
                              "head (it trains the main view alone): train it with "
                              "grad_method 'none', or pick a multi-task model (see "
                              "`malt models`)")
        own = not self.task.entire_space and \
            self.model_spec.model.own_auxiliary_terms(self.model_config())
        if self.aux_weight() == 0 or not (self.task.aux or own):
            why = "task.aux_weight (λ) is 0" if self.aux_weight() == 0 else \
                f"task.aux is empty and model '{name}' adds no auxiliary loss of its own"
            raise ConfigError(f"train.grad_method '{method}' weighs or combines the auxiliary "
                              f"views' losses with the main one, and this run trains none "
                              f"({why}), so every method would be the plain step: train it "
                              "with grad_method 'none', or give auxiliary views (task.aux) "
                              "a weight λ > 0")
        if not traits.shares_parameters:
            raise ConfigError(f"train.grad_method '{method}' lets the auxiliary views help the "
                              "main one through the parameters they share, and model "
                              f"'{name}' shares none between its views (each trains alone): "
                              "train it with grad_method 'none'")

    @property
    def model_spec(self) -> ModelSpec:
        from malt.models.registry import model_spec  # the models need torch: load them late

        return model_spec(self.model["name"])

    @property
    def model_options(self) -> dict[str, Any]:
        """The `[model]` table without `name` and `release_defaults`."""
        return {k: v for k, v in self.model.items() if k not in MODEL_KEYS}

    def sparse_table_gradients(self, device_type: str = "cpu") -> bool:
        """Whether the embedding tables produce sparse gradients on `device_type`: `lazy`
        always; `rows` on the CPU with grad_method 'none' or a loss weighting (the gradient
        methods combine dense per-task gradients, and NCCL cannot all-reduce sparse ones, so on
        CUDA `rows` trains with dense gradients and dense Adam: the same numbers)."""
        chosen = self.train.table_optimizer
        return chosen == "lazy" or (chosen == "rows" and device_type == "cpu" and
                                    self.train.grad_method in LOSS_WEIGHTING_METHODS)

    def model_config(self, device_type: str = "cpu") -> ModelConfig:
        """The model's config on `device_type`: its defaults (or the release's), then the
        options, with sparse embedding gradients where `sparse_table_gradients` says."""
        options = self.model_options
        if self.sparse_table_gradients(device_type):
            options = merge_tables(options, {"encoder": {"sparse_embeddings": True}})
        return self.model_spec.make_config(options,
                                           release_defaults=self.model["release_defaults"])

    def aux_weight(self) -> float:
        """λ: `task.aux_weight`, else the model's own default, else the target's reference λ."""
        if self.task.aux_weight is not None:
            return self.task.aux_weight
        own = self.model_spec.traits.aux_weight
        return own if own is not None else default_aux_weight(self.task.main)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, source: str = "config") -> RunConfig:
        """Every value checked against its field's type; errors are prefixed with `source`."""
        try:
            return build(cls, upgraded(raw), "")
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        return cls.from_dict(read_key_value_file(path), source=str(path))


_RENAMED_TRAIN_KEYS = {"lazy_adam": ("table_optimizer", {True: "lazy", False: "dense"}),
                      "amp": ("precision", {True: "bf16", False: "fp32"})}
"""Old key of `[train]` -> (its new key, the new value of each old one)."""


def upgraded(raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` with the keys of earlier malt versions renamed: `train.lazy_adam = true` (saved in
    the runs of malt before `table_optimizer`) is `table_optimizer = "lazy"`, false `"dense"`;
    `train.amp = true` (bfloat16 autocast, on CUDA only, before `precision`) is
    `precision = "bf16"`, false `"fp32"`."""
    train = raw.get("train")
    if not isinstance(train, dict) or not _RENAMED_TRAIN_KEYS.keys() & train.keys():
        return raw
    train = dict(train)
    for old, (new, values) in _RENAMED_TRAIN_KEYS.items():
        if old not in train:
            continue
        if new in train:
            raise ConfigError(f"train.{old} is the old name of train.{new}: give one")
        value = train.pop(old)
        check_value(f"train.{old}", value, bool)
        train[new] = values[value]
    return {**raw, "train": train}


def build_task(config: RunConfig) -> Task:
    """The task of a run (its main and auxiliary views, λ, label mode and mask), made from
    `config` once; `malt.training.builder.build_run` checks it against the data's schema
    before anything is built from it."""
    t = config.task
    return Task(main=t.main, aux=tuple(t.aux), aux_weight=config.aux_weight(),
                label_mode=t.label_mode, mask=t.mask, delay_correction=t.delay_correction,
                entire_space=t.entire_space)
