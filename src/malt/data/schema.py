"""Declarative description of a data set: what each column is and how models should use it.

A schema names the categorical fields (grouped user / ad / context), the id sequences and the
field whose embedding table each one shares, the float sequences (aligned with the id
sequences), the user column used for grouping, and the label columns (continuous attribution
weights). The MAC release is the built-in default; other data sets load a TOML or YAML file:

    name = "shop-logs"
    user_column = "uid"
    labels = ["last", "first", "linear", "position", "dda"]
    sequence_length = 50            # default length of every sequence
    sequence_pad = "0"              # raw id that pads a short id sequence (required with
                                    # id sequences; never a real id of the shared fields)
    ragged_sequences = false        # true: rows may hold fewer or more items than the length
                                    # (padded after reading: no sequence_pad then)
    float_sequences = ["image_sim"] # or a table {image_sim = 50}
    numeric = ["price", "cost"]     # scalar numbers, standardised; or a table naming each
                                    # column's transform {price = "log1p", cost = "none"}
    numeric_fill = 0.0              # NaN, inf or missing numbers become this (default: error)
    hash_buckets = {category = 1000}  # ids hashed into N rows, no vocab (malt.data.hashing)
    embed_dims = {item = 32, tags = 8}  # a table's width (default: the encoder's embed_dim)
    ignore_columns = ["note"]       # present in the files, not used
    strict_columns = false          # true: a column not named here is an error, not a warning

    [fields]
    user = ["age", "city"]
    ad = ["item", "shop", "category"]
    context = ["hour"]

    [id_sequences]                  # sequence column -> field whose table it shares
    item_seq = "item"
    shop_seq = { shares = "shop", length = 50 }

    [bags]                          # multi-hot list columns, each with its own table
    tags = { group = "ad", pooling = "mean", max_length = 16 }

(YAML takes the same keys. Each id sequence has its own length: a click history of 50 may
sit beside a search history of 10. Float sequences are position-aligned with the first id
sequence and share its length (and its padding). Numeric
transforms are `standardise` (the default, with the training days' mean and std), `log1p` and
`none`; see `malt.data.numeric`.)

A bag is a list of ids per row, of any length (an empty list too), looked up in its own
table (`vocabs/<bag>.json`, or hashed when `hash_buckets` names it) and pooled into one
embedding by `sum` or `mean` (an empty bag pools to zeros); a row's first `max_length` ids are
kept, and `malt prepare` counts the rows it truncates. A bag joins the fields of its `group`.

With `ragged_sequences = true` the sequences' rows may hold any number of items: a row is
cut to its first `length` items and padded after them (ids with a padding row of their own,
after the table's OOV row; floats with 0), so the padding mask follows each row's length and
no `sequence_pad` is needed (nor read). The first id sequence and the float sequences of a
row hold one number of items (they are position-aligned); the other id sequences each hold
their own.

Logs that store a sequence as a fixed-width list and its number of items apart name that
column: `history = { shares = "item", length = 10, length_column = "history_len" }` (ragged
sequences only). Row i's items are then the first n_i of its list, n_i from the integer column
`history_len` (0 or more, at most the list's length); the rest of the list is never read (not
looked up, counted as OOV, nor put in a vocab). Sequences may share a length column. A float
sequence aligned with a first id sequence that has one keeps the first n_i values of each row
(its list holds at least n_i).

`embed_dims` sets the width of a field's or a bag's embedding table; the others take the
encoder's `embed_dim`. An id sequence is looked up in the table it shares, so it has that
table's width (naming it is an error).

For incomplete multi-label data (KAML) a schema also names `campaign_column`,
`target_action_column` (a label index or label name per row; -1 or "other" for a target outside
the labels) and optionally `true_labels` (the unreported truth, one column per label, kept for
oracle training and evaluation only) and `reported_labels` (0/1 per label: whether the row's
campaign reports that action at all; read by the `reported` mask).

Simulated data can carry the generating process's truth: `true_probability_column` (each
row's true conversion probability) and `true_credit_column` (each row's true share of the
conversions it is credited for). They are never read for training; evaluation scores runs and
attribution rules against them where the files hold them (`malt.eval.truth`), and they may be
absent (the built-in MAC schema names the columns `malt simulate` writes).

Impression logs name a `click_column`: 0/1 per row, 1 for a clicked impression. The rows with 0
are impressions nobody clicked, and their attribution labels must be 0 (a conversion needs a
click). Such data trains a CVR model on its clicked rows, or entire-space models (`--entire-space`,
ESMM) on every impression; without the column every row is a click.

A label may come with the time its credit became known: `<label>_known_at` (unix seconds,
null where the label is 0), or the column the `known_at` table names for it. The columns are
optional in the files, for every label or none; the as-of cut (`malt.data.as_of`) reads them.
A row may also carry its click's time (`click_time` unless the schema names another column; unix
seconds or a timestamp, on the known-at columns' clock), optional in the files: with it a run
as of T knows each row's elapsed time and each known label's delay (`malt.data.batches`).

The file's keys are the fields of `SchemaFile` (its tables those of `FieldGroups`,
`SharedTable` ...), read with `malt.typed_fields.build`: a value of the wrong type is an error
naming the key, the value and what was expected, and an unknown key names the closest valid
one. The file becomes a `Schema`, the column roles the rest of malt reads.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from malt.config_files import read_key_value_file
from malt.errors import ConfigError
from malt.file_names import check_file_name
from malt.typed_fields import FiniteFloat, PositiveInt, build, validate

Group = Literal["user", "ad", "context"]
"""What a categorical field describes; models fuse the fields group by group."""
GROUPS = get_args(Group)
Pooling = Literal["sum", "mean"]
"""How a bag's id embeddings become one: their sum, or their mean (zero for an empty bag)."""
Transform = Literal["standardise", "log1p", "none"]
"""What a numeric column becomes before the models see it (see `malt.data.numeric`)."""
SCHEMA_FILE = "schema.toml"
"""The file a data set's own schema is read from when no other is named."""
DEFAULT_SEQUENCE_LENGTH = 20
DEFAULT_SEQUENCE_PAD = "0"
KNOWN_AT_SUFFIX = "_known_at"
DEFAULT_CLICK_TIME = "click_time"
"""The click-time column unless the schema's `click_time` names another."""
"""A label's known-at column is `<label>_known_at` unless the schema's `known_at` names one."""


@dataclass(frozen=True)
class CategoricalField:
    """A scalar categorical column, embedded with its own table."""

    name: str
    """The column."""
    group: Group
    """What it describes: `user`, `ad` or `context`."""

    def __post_init__(self) -> None:
        validate(self, "")


@dataclass(frozen=True)
class IdSequence:
    """A fixed-length list of ids looked up in the table of field `shares`."""

    name: str
    shares: str
    length: PositiveInt
    length_column: str | None = None
    """Ragged sequences: the integer column holding each row's number of valid leading
    items (the rest of the row's list is not read); None: the list's own length."""

    def __post_init__(self) -> None:
        validate(self, "")


@dataclass(frozen=True)
class FloatSequence:
    """A fixed-length list of floats, position-aligned with the first id sequence."""

    name: str
    length: PositiveInt

    def __post_init__(self) -> None:
        validate(self, "")


@dataclass(frozen=True)
class Bag:
    """A multi-hot list column: ids looked up in its own table and pooled into one embedding."""

    name: str
    """The list column (and its vocab, `vocabs/<name>.json`)."""
    group: Group
    """What it describes: `user`, `ad` or `context`; it joins that group's fields."""
    pooling: Pooling
    """`sum` or `mean` of its ids' embeddings."""
    max_length: PositiveInt
    """Ids kept per row: the first `max_length`; longer rows are truncated and counted."""

    def __post_init__(self) -> None:
        validate(self, "")


@dataclass(frozen=True)
class NumericField:
    """A scalar number column, fed to the models after its transform (see `malt.data.numeric`)."""

    name: str
    transform: Transform = "standardise"

    def __post_init__(self) -> None:
        validate(self, "")


@dataclass(frozen=True)
class Schema:
    """Column roles of a data set. Field order is the column order of `Batch['sparse']`."""

    name: str
    user_column: str
    fields: tuple[CategoricalField, ...]
    labels: tuple[str, ...]
    id_sequences: tuple[IdSequence, ...] = ()
    float_sequences: tuple[FloatSequence, ...] = ()
    sequence_pad: str = DEFAULT_SEQUENCE_PAD
    ragged_sequences: bool = False
    """The sequences' rows may hold any number of items (cut to, or padded to, the length)."""
    campaign_column: str | None = None
    target_action_column: str | None = None
    true_labels: tuple[str, ...] = ()
    reported_labels: tuple[str, ...] = ()
    ignore_columns: tuple[str, ...] = ()
    strict_columns: bool = False
    """Refuse files with columns the schema does not name (by default they are ignored, with
    one warning listing them)."""
    true_probability_column: str | None = None
    """Simulated data: each row's true conversion probability (evaluation only; optional in
    the files)."""
    true_credit_column: str | None = None
    """Simulated data: each row's true share of the conversions it is credited for (scoring
    attribution rules; optional in the files)."""
    numeric: tuple[NumericField, ...] = ()
    numeric_fill: FiniteFloat | None = None
    """The value NaN, inf and missing numbers become; None: they are an error."""
    bags: tuple[Bag, ...] = ()
    """The multi-hot list columns, pooled after the fields (`Batch['bags']` order)."""
    hash_buckets: tuple[tuple[str, PositiveInt], ...] = ()
    """(field, rows) of the fields whose ids are hashed into that many rows, without a vocab
    file (see `malt.data.hashing`)."""
    embed_dims: tuple[tuple[str, PositiveInt], ...] = ()
    """(field or bag, width) of the tables whose width is not the encoder's `embed_dim`."""
    known_at: tuple[tuple[str, str], ...] = ()
    """(label, column) of the labels whose known-at column is not `<label>_known_at`: the
    time (unix seconds) each row's credit became known, null where the label is 0. Optional
    in the files (for every label or none); read by the as-of cut (`malt.data.as_of`)."""
    click_time: str = DEFAULT_CLICK_TIME
    """The column holding each row's click time (unix seconds or a timestamp, on the clock of
    the known-at columns). Optional in the files; a delay model (`--delay-correction dfm`)
    needs it. It may be listed under `ignore_columns` (it is never a feature)."""
    click_column: str | None = None
    """Impression logs: the column saying whether each impression was clicked (0 or 1); the
    labels of an unclicked row are 0. None: every row is a click."""

    def __post_init__(self) -> None:
        validate(self, "")
        self._check()

    # --- derived views -------------------------------------------------------------------
    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def group_indices(self, group: str) -> list[int]:
        """Positions in `Batch['sparse']` of the fields of one group."""
        if group not in GROUPS:
            raise ConfigError(f"unknown field group '{group}', expected one of {GROUPS}")
        return [i for i, f in enumerate(self.fields) if f.group == group]

    def embedded_group_indices(self, group: str) -> list[int]:
        """Positions of one group's embeddings among the fields then the pooled bags
        (`[B, F + K, d]`, as `malt.layers.FieldEmbeddings` returns them)."""
        n = len(self.fields)
        return self.group_indices(group) + [n + k for k, b in enumerate(self.bags)
                                            if b.group == group]

    def ad_side_indices(self) -> list[int]:
        """Positions of the ad-side embeddings among the fields then the pooled bags: the ad
        fields, the context fields, then the bags of either group (target attention's query,
        STAR's auxiliary input)."""
        n = len(self.fields)
        return [*self.group_indices("ad"), *self.group_indices("context"),
                *(n + k for k, b in enumerate(self.bags) if b.group != "user")]

    @property
    def bag_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bags)

    @property
    def bag_width(self) -> int:
        """Positions per bag in the cached and served arrays: the largest `max_length`."""
        return max((b.max_length for b in self.bags), default=0)

    def table_width(self, name: str, default: int) -> int:
        """The embedding width of the field or bag `name`: its `embed_dims` entry, else
        `default` (the encoder's `embed_dim`)."""
        return dict(self.embed_dims).get(name, default)

    @property
    def table_names(self) -> tuple[str, ...]:
        """Every column with its own embedding table: the fields, then the bags."""
        return (*self.field_names, *self.bag_names)

    @property
    def sequence_length(self) -> int | None:
        """L of `seq` [N, S, L]: the longest id sequence's length (each shorter one is padded
        past its own), or None without id sequences."""
        return max((s.length for s in self.id_sequences), default=None)

    @property
    def float_sequence_length(self) -> int | None:
        """L of `dense_seq` [N, C, L]: the float sequences' length, that of the first id
        sequence they are aligned with; None without float sequences."""
        return self.float_sequences[0].length if self.float_sequences else None

    @property
    def vocab_columns(self) -> tuple[str, ...]:
        """Every column that needs `vocabs/<column>.json` (hashed fields do not)."""
        hashed = dict(self.hash_buckets)
        return tuple(c for c in (self.user_column, *self.table_names) if c not in hashed)

    @property
    def truth_columns(self) -> tuple[str, ...]:
        """The simulated truth's columns: known to the schema, never required or trained on."""
        return tuple(c for c in (self.true_probability_column, self.true_credit_column) if c)

    @property
    def known_at_columns(self) -> tuple[str, ...]:
        """The known-at column of every label, in label order: `<label>_known_at` unless
        `known_at` names another."""
        named = dict(self.known_at)
        return tuple(named.get(label, f"{label}{KNOWN_AT_SUFFIX}") for label in self.labels)

    @property
    def length_columns(self) -> tuple[str, ...]:
        """The id sequences' length columns, each once (sequences may share one)."""
        return tuple(dict.fromkeys(s.length_column for s in self.id_sequences
                                   if s.length_column))

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column a day file must hold."""
        cols = [self.user_column, *self.field_names]
        cols += [s.name for s in self.id_sequences] + [s.name for s in self.float_sequences]
        cols += list(self.length_columns)
        cols += [f.name for f in self.numeric] + list(self.bag_names)
        cols += [c for c in (self.campaign_column, self.target_action_column) if c]
        cols += [*self.labels, *self.true_labels, *self.reported_labels]
        cols += [self.click_column] if self.click_column else []
        return tuple(dict.fromkeys(cols))

    def label_index(self, name: str) -> int:
        if name not in self.labels:
            raise ConfigError(f"unknown label '{name}'; the schema '{self.name}' has labels "
                              f"{list(self.labels)}")
        return self.labels.index(name)

    def fingerprint(self) -> str:
        """A short hash of everything that changes how files are read (not the name, whether
        unnamed columns are refused, nor the tables' widths)."""
        content = {k: v for k, v in self.to_dict().items()
                   if k not in ("name", "strict_columns", "true_probability_column",
                                "true_credit_column", "embed_dims")}
        # Left out when unused, so schemas written before numeric columns keep their caches.
        if not self.numeric:
            del content["numeric"]
        if self.numeric_fill is None:
            del content["numeric_fill"]
        if not self.hash_buckets:
            del content["hash_buckets"]
        if not self.known_at:
            del content["known_at"]
        if self.click_time == DEFAULT_CLICK_TIME:
            del content["click_time"]
        if self.click_column is None:
            del content["click_column"]
        if not self.bags:
            del content["bags"]
        if not self.ragged_sequences:
            del content["ragged_sequences"]
        payload = json.dumps(content, sort_keys=True, allow_nan=False).encode()
        return hashlib.sha256(payload).hexdigest()[:16]

    # --- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The schema as `from_dict` reads it back."""
        out = asdict(self)
        # Left out when unset, so schemas without length columns keep their fingerprint.
        out["id_sequences"] = tuple({k: v for k, v in asdict(s).items()
                                     if k != "length_column" or v is not None}
                                    for s in self.id_sequences)
        out["numeric"] = {f.name: f.transform for f in self.numeric}
        out["hash_buckets"] = dict(self.hash_buckets)
        out["embed_dims"] = dict(self.embed_dims)
        out["known_at"] = dict(self.known_at)
        out["bags"] = {b.name: {"group": b.group, "pooling": b.pooling,
                                "max_length": b.max_length} for b in self.bags}
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, source: str = "schema") -> Schema:
        """The schema a file's table describes (see `SchemaFile`); errors are prefixed with
        `source`."""
        try:
            return build(SchemaFile, raw, "").schema(Path(source).stem)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        """Read a schema from a .toml, .yaml/.yml or .json file."""
        return cls.from_dict(read_key_value_file(path, "schema"), source=str(path))

    # --- validation ----------------------------------------------------------------------
    def _check(self) -> None:
        # Columns with a vocab name `vocabs/<column>.json`; labels name a run's plots.
        for key, name in [("user_column", self.user_column),
                          *(("fields", f) for f in self.field_names),
                          *(("bags", b) for b in self.bag_names),
                          *([("campaign_column", self.campaign_column)]
                            if self.campaign_column is not None else []),
                          *(("labels", label) for label in self.labels)]:
            check_file_name(name, f"schema '{self.name}': {key}")
        names = [self.user_column, *self.field_names]
        names += [s.name for s in self.id_sequences] + [s.name for s in self.float_sequences]
        names += [f.name for f in self.numeric] + list(self.bag_names)
        names += [*self.labels, *self.true_labels, *self.reported_labels, *self.truth_columns]
        names += [*self.known_at_columns]
        names += [self.click_column] if self.click_column else []
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"schema '{self.name}': columns declared twice: {dupes}")
        for s in self.id_sequences:
            if s.length_column is None:
                continue
            if not self.ragged_sequences:
                raise ConfigError(f"schema '{self.name}': the id sequence '{s.name}' names the "
                                  f"length column '{s.length_column}', which needs "
                                  "ragged_sequences = true")
            if s.length_column in (*names, self.campaign_column, self.target_action_column):
                raise ConfigError(f"schema '{self.name}': the length column "
                                  f"'{s.length_column}' of '{s.name}' is also declared as "
                                  "another column; give it a column of its own")
        names += [*self.length_columns]
        if not self.labels:
            raise ConfigError(f"schema '{self.name}': declare at least one label column")
        if "cat" in self.labels:
            raise ConfigError(f"schema '{self.name}': 'cat' is reserved for the Cartesian view")
        for name, _ in self.hash_buckets:
            if name not in self.table_names:
                raise ConfigError(f"schema '{self.name}': hash_buckets names '{name}', which is "
                                  "not a categorical field nor a bag (the user column keeps its "
                                  "vocab: GAUC groups by it)")
            if any(s.shares == name for s in self.id_sequences):
                raise ConfigError(f"schema '{self.name}': '{name}' is shared by id sequences, "
                                  "whose padding needs a vocab; it cannot be hashed")
        for name, _ in self.embed_dims:
            shared = [s.shares for s in self.id_sequences if s.name == name]
            if shared:
                raise ConfigError(f"schema '{self.name}': embed_dims names the id sequence "
                                  f"'{name}', which is looked up in the table of "
                                  f"'{shared[0]}' and has its width; set that field's")
            if name not in self.table_names:
                raise ConfigError(f"schema '{self.name}': embed_dims names '{name}', which is "
                                  f"not a categorical field nor a bag ({list(self.table_names)})")
        for s in self.id_sequences:
            if s.shares not in self.field_names:
                raise ConfigError(f"schema '{self.name}': sequence '{s.name}' shares the table "
                                  f"of '{s.shares}', which is not a categorical field")
        # Id sequences are independent; float sequences are aligned with the first id
        # sequence (its padding mask is theirs), or with each other when there is none.
        floats = self.float_sequences
        anchor = self.id_sequences[0] if self.id_sequences else floats[0] if floats else None
        for f in floats:
            if f.length != anchor.length:
                raise ConfigError(f"schema '{self.name}': the float sequence '{f.name}' holds "
                                  f"{f.length} values and '{anchor.name}' {anchor.length}: "
                                  f"float sequences are position-aligned with '{anchor.name}' "
                                  "and must share its length")
        if self.true_labels and len(self.true_labels) != len(self.labels):
            raise ConfigError(f"schema '{self.name}': true_labels must match labels one to one")
        if self.click_time in names:
            raise ConfigError(f"schema '{self.name}': click_time names '{self.click_time}', "
                              "which is also a feature, label or known-at column")
        strays = [label for label, _ in self.known_at if label not in self.labels]
        if strays:
            raise ConfigError(f"schema '{self.name}': known_at names {strays}, which are not "
                              f"labels; the labels are {list(self.labels)}")
        if self.reported_labels and len(self.reported_labels) != len(self.labels):
            raise ConfigError(f"schema '{self.name}': reported_labels must match labels one to "
                              "one")


@dataclass(frozen=True)
class FieldGroups:
    """`[fields]`: the categorical columns of each group (embedded in the order user, ad,
    context)."""

    user: tuple[str, ...] = ()
    """Columns that describe the user (age, city ...)."""
    ad: tuple[str, ...] = ()
    """Columns that describe the ad and its item (item, shop, category ...)."""
    context: tuple[str, ...] = ()
    """Columns that describe the request (hour, page ...)."""


@dataclass(frozen=True)
class SharedTable:
    """An id sequence given as a table: `item_seq = { shares = "item", length = 50 }`."""

    shares: str
    """The categorical field whose embedding table the sequence's ids are looked up in."""
    length: PositiveInt | None = None
    """Ids per row; None: the file's `sequence_length`."""
    length_column: str | None = None
    """With `ragged_sequences`: the integer column holding each row's number of valid
    leading items (the rest of its list is not read); sequences may share one."""


@dataclass(frozen=True, kw_only=True)
class IdSequenceEntry(SharedTable):
    """An id sequence in a list: `{ name = "item_seq", shares = "item", length = 50 }`
    (and optionally `length_column`)."""

    name: str
    """The sequence column."""


@dataclass(frozen=True)
class BagEntry:
    """A bag: `tags = { group = "ad", pooling = "mean", max_length = 16 }`."""

    group: Group
    """What it describes: `user`, `ad` or `context`."""
    max_length: PositiveInt
    """Ids kept per row (the first ones); longer rows are truncated and counted."""
    pooling: Pooling = "sum"
    """`sum` or `mean` of its ids' embeddings (an empty bag pools to zeros)."""


@dataclass(frozen=True)
class FloatSequenceEntry:
    """A float sequence in a list: `{ name = "image_sim", length = 50 }`."""

    name: str
    """The sequence column."""
    length: PositiveInt | None = None
    """Values per row; None: the file's `sequence_length`."""


@dataclass(frozen=True)
class SchemaFile:
    """The keys of a schema file (TOML, YAML or JSON; see the module docstring)."""

    user_column: str
    """The user id column: GAUC groups the rows by it (it keeps its vocab; never hashed)."""
    fields: FieldGroups | tuple[CategoricalField, ...]
    """The categorical columns: `[fields]` with a list per group, or a list of `{name, group}`
    tables."""
    labels: tuple[str, ...]
    """The label columns (attribution weights); at least one, none called `cat`."""
    name: str | None = None
    """The schema's name (default: the file's name without its extension)."""
    id_sequences: dict[str, str | SharedTable] | tuple[IdSequenceEntry, ...] = \
        field(default_factory=dict)
    """Id sequences: a table sequence column -> the field whose table it shares (or a
    `{shares, length, length_column}` table), or a list of `{name, shares, length,
    length_column}` tables."""
    float_sequences: tuple[str | FloatSequenceEntry, ...] | dict[str, PositiveInt] = ()
    """Float sequences, position-aligned with the first id sequence: a list of columns (or of
    `{name, length}` tables), or a table column -> length."""
    sequence_length: PositiveInt = DEFAULT_SEQUENCE_LENGTH
    """The length of every sequence that gives none; each id sequence may give its own, the
    float sequences that of the first id sequence."""
    sequence_pad: str | int | None = None
    """The raw id that pads a short id sequence (an integer is read as its text): required
    with id sequences of fixed length, and never a real id of the fields they share; "0"
    without them; not read with `ragged_sequences`."""
    ragged_sequences: bool = False
    """true: a sequence's rows may hold any number of items; each is cut to its first
    `length` and padded after them (ids with a padding row of their own, floats with 0); the
    first id sequence and the float sequences of a row hold one number of items."""
    campaign_column: str | None = None
    """KAML data: the campaign (advertiser) of each row."""
    target_action_column: str | None = None
    """KAML data: each row's target action, a label index or label name (-1 or "other": a
    target outside the labels)."""
    true_labels: tuple[str, ...] = ()
    """KAML data: the unreported truth, one column per label (oracle training and evaluation
    only)."""
    reported_labels: tuple[str, ...] = ()
    """KAML data: 0/1 per label, whether the row's campaign reports that action at all (read
    by the `reported` mask)."""
    ignore_columns: tuple[str, ...] = ()
    """Columns the files hold that are not used."""
    strict_columns: bool = False
    """true: a column the schema does not name is an error, not a warning."""
    numeric: tuple[str, ...] | dict[str, Transform] = ()
    """Scalar number columns: a list (each standardised) or a table column -> transform
    (`standardise`, `log1p`, `none`; see `malt.data.numeric`)."""
    numeric_fill: FiniteFloat | None = None
    """The value NaN, inf and missing numbers of numeric columns become (default: they are an
    error)."""
    bags: dict[str, BagEntry] = field(default_factory=dict)
    """Multi-hot list columns -> `{group, max_length, pooling}`: each row a list of ids (of
    any length, empty too) looked up in the bag's own table and pooled into one embedding."""
    embed_dims: dict[str, PositiveInt] = field(default_factory=dict)
    """Field or bag -> the width of its embedding table (default: the encoder's `embed_dim`);
    an id sequence has the width of the table it shares."""
    hash_buckets: dict[str, PositiveInt] = field(default_factory=dict)
    """Fields (and bags) whose ids are hashed into that many rows, without a vocab file (see
    `malt.data.hashing`)."""
    true_probability_column: str | None = None
    """Simulated data: each row's true conversion probability (never trained on; evaluation
    scores runs against it where the files hold it)."""
    true_credit_column: str | None = None
    """Simulated data: each row's true share of the conversions it is credited for (never
    trained on; scores attribution rules where the files hold it)."""
    known_at: dict[str, str] = field(default_factory=dict)
    """Label -> the column holding the time (unix seconds) each row's credit became known,
    null where the label is 0; a label not named here uses `<label>_known_at`. Optional in
    the files, for every label or none; the as-of cut (`--as-of`) needs them."""
    click_time: str = DEFAULT_CLICK_TIME
    """The column holding each row's click time (unix seconds or a timestamp, on the clock of
    the known-at columns; optional in the files). `--delay-correction dfm` needs it."""
    click_column: str | None = None
    """Impression logs: the column saying whether each impression was clicked (0 or 1; the
    labels of an unclicked row must be 0). Required by `--entire-space`; a CVR model trained
    without it learns from the clicked rows only."""

    def schema(self, default_name: str) -> Schema:
        """The `Schema` this file describes (`default_name` when it names none)."""
        fields = self.fields if not isinstance(self.fields, FieldGroups) else tuple(
            CategoricalField(n, g) for g in GROUPS for n in getattr(self.fields, g))
        schema = Schema(
            name=self.name if self.name is not None else default_name,
            user_column=self.user_column, fields=fields, labels=self.labels,
            id_sequences=self._id_sequences(), float_sequences=self._float_sequences(),
            sequence_pad=DEFAULT_SEQUENCE_PAD if self.sequence_pad is None
            else str(self.sequence_pad), ragged_sequences=self.ragged_sequences,
            campaign_column=self.campaign_column,
            target_action_column=self.target_action_column, true_labels=self.true_labels,
            reported_labels=self.reported_labels, ignore_columns=self.ignore_columns,
            strict_columns=self.strict_columns,
            numeric=tuple(NumericField(n) for n in self.numeric) if not isinstance(
                self.numeric, dict) else tuple(NumericField(n, t) for n, t in
                                               self.numeric.items()),
            numeric_fill=self.numeric_fill, hash_buckets=tuple(self.hash_buckets.items()),
            bags=tuple(Bag(n, b.group, b.pooling, b.max_length) for n, b in self.bags.items()),
            embed_dims=tuple(self.embed_dims.items()),
            true_probability_column=self.true_probability_column,
            true_credit_column=self.true_credit_column,
            known_at=tuple(self.known_at.items()), click_time=self.click_time,
            click_column=self.click_column)
        if schema.id_sequences and self.sequence_pad is None and not self.ragged_sequences:
            # No default: a pad that is also a real id would be masked out wherever it occurs.
            raise ConfigError("declare sequence_pad, the raw id that pads short id sequences "
                              "(one that is never a real id of the shared fields)")
        return schema

    def _id_sequences(self) -> tuple[IdSequence, ...]:
        entries = self.id_sequences if not isinstance(self.id_sequences, dict) else [
            IdSequenceEntry(name=n, **({"shares": s} if isinstance(s, str) else vars(s)))
            for n, s in self.id_sequences.items()]
        return tuple(IdSequence(e.name, e.shares, e.length or self.sequence_length,
                                e.length_column) for e in entries)

    def _float_sequences(self) -> tuple[FloatSequence, ...]:
        if isinstance(self.float_sequences, dict):
            return tuple(FloatSequence(n, length) for n, length in self.float_sequences.items())
        entries = [FloatSequenceEntry(e) if isinstance(e, str) else e
                   for e in self.float_sequences]
        return tuple(FloatSequence(e.name, e.length or self.sequence_length) for e in entries)


def _mac_schema() -> Schema:
    fields = ([CategoricalField(f"user_feat{i}", "user") for i in range(6)]
              + [CategoricalField(f"ad_feat{i}", "ad") for i in range(6)]
              + [CategoricalField(f"context_feat{i}", "context") for i in range(4)])
    return Schema(
        name="mac",
        user_column="user_id",
        fields=tuple(fields),
        labels=("last", "first", "linear", "mta"),
        id_sequences=tuple(IdSequence(f"ad_feat{i}_seq", f"ad_feat{i}", 20) for i in range(3)),
        float_sequences=tuple(FloatSequence(f"mm_feat{i}_seq", 20) for i in range(2)),
        true_probability_column="true_cvr",
        true_credit_column="true_credit",
    )


MAC = _mac_schema()
"""The MAC release: 1 user id + 6 user, 6 ad and 4 context fields, 3 purchase-sequence id
columns sharing the ad_feat0..2 tables, 2 similarity-score sequences, labels last/first/linear/mta
(the DDA label is called `mta` in the release); simulated data add the truth columns
`true_cvr` and `true_credit`, which the release lacks."""


def schema_for(data: str | Path | None, explicit: str | Path | None = None) -> Schema:
    """The schema of a data set, by one rule for every command: the `explicit` file when given,
    else `<data>/schema.toml` when the data set has one, else the built-in MAC schema."""
    if explicit is not None:
        return Schema.load(explicit)
    # Anything named schema.toml is the data set's schema: a directory or a link to nothing
    # there is reported, not passed over for MAC's schema.
    if data is not None and os.path.lexists(Path(data) / SCHEMA_FILE):
        return Schema.load(Path(data) / SCHEMA_FILE)
    return MAC
