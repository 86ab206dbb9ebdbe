"""What is learned: the main view, the auxiliary views, their weight and the label mode.

A *view* is one attribution label of the schema (`last`, `first`, ...) or `cat`, the Cartesian
view whose class is the joint outcome of all binarised labels (see
`malt.losses.views.cat_classes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from malt.data.schema import Schema
from malt.errors import ConfigError
from malt.typed_fields import NonNegativeFloat, check_value, validate

CAT = "cat"
CTR = "ctr"
"""The click task of entire-space training (its loss term's name; no view may take it)."""
LabelMode = Literal["binary", "weighted"]
"""`binary`: targets are weight > 0, as in the paper; `weighted`: the attribution weights
clipped to [0, 1], soft BCE targets."""
DelayCorrection = Literal["none", "fnw", "fnc", "dfm"]
"""How the loss treats labels that may still arrive (`malt.losses.delayed`): `none` trains on
the labels as they are (naive), `fnw` is fake-negative weighting and `fnc` fake-negative
calibration (Ktena et al., RecSys 2019), `dfm` the delayed-feedback model (Chapelle, KDD 2014:
a conversion probability and an exponential delay, fitted on each row's elapsed time), applied
to every binary view."""
Mask = Literal["none", "base", "adm", "reported", "oracle"]
"""Training mask policies (see `malt.data.masks`); `none` trains every label of every row."""
CoverageMask = Literal["base", "adm", "reported"]
"""The masks a coverage report shows (`malt.data.masks.coverage_report`): those that hide
labels."""
COVERAGE_MASKS = get_args(CoverageMask)
AdmWindow = Literal["trailing", "static"]
"""What ADM counts a campaign's conversions over (see `malt.data.masks.AdmOptions`)."""
MASK_COLUMNS = {"none": (), "base": ("target_action_column",),
                "adm": ("target_action_column", "campaign_column"),
                "reported": ("target_action_column", "reported_labels"),
                "oracle": ("true_labels",)}
"""Schema roles each mask policy reads."""

# λ used by the MAC paper's reference runs for each target attribution of the MAC schema.
REFERENCE_AUX_WEIGHT = {"last": 0.3, "first": 0.1, "mta": 0.3, "linear": 0.2}
DEFAULT_AUX_WEIGHT = 0.3


def default_aux_weight(main: str) -> float:
    """The reference λ for `main`, or 0.3 for labels the reference never targeted."""
    return REFERENCE_AUX_WEIGHT.get(main, DEFAULT_AUX_WEIGHT)


@dataclass(frozen=True)
class Task:
    """Main view, auxiliary views (any other labels and/or `cat`) and how they are trained.

    Built once per run from the run config (`malt.runs.config.build_task`); the builder checks
    it against the data's schema (`validate`) before anything is built from it.
    """

    main: str
    """The main view: the target attribution label."""
    aux: tuple[str, ...] = ()
    """Auxiliary views: other labels and/or `cat`."""
    aux_weight: NonNegativeFloat = DEFAULT_AUX_WEIGHT
    """λ in `loss = L_main + λ · Σ_k L_aux_k`."""
    label_mode: LabelMode = "binary"
    """What the targets are (see `LabelMode`)."""
    mask: Mask = "none"
    """The training mask policy for incomplete labels (see `malt.data.masks`)."""
    delay_correction: DelayCorrection = "none"
    """The delayed-feedback correction of every binary view's loss (see `DelayCorrection`)."""
    entire_space: bool = False
    """Train over every impression (ESMM): a CTR head beside the views, each view's CVR times
    the CTR fitted to click ∧ conversion; needs data with a click column."""

    def __post_init__(self) -> None:
        validate(self, "task")
        if self.main == CAT:
            raise ConfigError("'cat' can only be an auxiliary view")
        if self.main in self.aux:
            raise ConfigError(f"the main view '{self.main}' cannot also be auxiliary")
        if len(set(self.aux)) != len(self.aux):
            raise ConfigError(f"auxiliary views repeat: {list(self.aux)}")
        if CAT in self.aux and self.mask not in ("none", "oracle"):
            raise ConfigError(f"'cat' needs every label of a row; it cannot be trained under "
                              f"the '{self.mask}' mask")
        if CAT in self.aux and self.delay_correction != "none":
            raise ConfigError(f"the delay correction '{self.delay_correction}' weighs binary "
                              f"views; the Cartesian view '{CAT}' has none (leave it out)")

        if self.entire_space:
            self._check_entire_space()

    def _check_entire_space(self) -> None:
        """Refuse what entire-space training does not combine with."""
        if CAT in self.aux:
            raise ConfigError(f"entire-space training multiplies each view's conversion rate by "
                              f"the click rate; the Cartesian view '{CAT}' has no such product "
                              "(leave it out)")
        if self.mask != "none":
            raise ConfigError(f"entire-space training fits every impression; it takes no "
                              f"training mask (got '{self.mask}')")
        if self.delay_correction != "none":
            raise ConfigError(f"entire-space training takes no delay correction (got "
                              f"'{self.delay_correction}')")
        if CTR in self.views:
            raise ConfigError(f"entire-space training names its click task '{CTR}'; a view of "
                              "that name would share its loss term (rename the label)")

    @property
    def views(self) -> tuple[str, ...]:
        """Main view first, then the auxiliary views in the given order."""
        return (self.main, *self.aux)

    @property
    def label_views(self) -> tuple[str, ...]:
        """The views that are attribution labels (every view but `cat`)."""
        return tuple(v for v in self.views if v != CAT)

    def validate(self, schema: Schema) -> None:
        """Raise if a view is not a label of `schema` or the schema lacks a column the mask
        policy reads."""
        for view in self.label_views:
            schema.label_index(view)
        check_mask(self.mask, schema)
        if self.entire_space and not schema.click_column:
            raise ConfigError(f"entire-space training needs impression logs: the schema "
                              f"'{schema.name}' declares no click_column (its rows are all "
                              "clicks)")
        if self.click_space_mask(schema) and CAT in self.aux:
            raise ConfigError(f"the data holds unclicked impressions, which a click-space run "
                              f"masks out, and the Cartesian view '{CAT}' takes no mask: leave "
                              "it out, or train with --entire-space")

    def click_space_mask(self, schema: Schema) -> bool:
        """Whether the training loss leaves out `schema`'s unclicked impressions: impression
        logs trained in the click space (a CVR model learns from its clicks)."""
        return schema.click_column is not None and not self.entire_space


def check_mask(mask: Mask, schema: Schema) -> None:
    """Raise when `mask` is not a policy or `schema` lacks a column the policy reads."""
    check_value("mask", mask, Mask)
    missing = [role for role in MASK_COLUMNS[mask] if not getattr(schema, role)]
    if missing:
        raise ConfigError(f"mask '{mask}' needs the schema to declare {missing}; schema "
                          f"'{schema.name}' does not")
