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
    float_sequences = ["image_sim"] # or a table {image_sim = 50}
    numeric = ["price", "cost"]     # scalar numbers, standardised; or a table naming each
                                    # column's transform {price = "log1p", cost = "none"}
    numeric_fill = 0.0              # NaN, inf or missing numbers become this (default: error)
    hash_buckets = {category = 1000}  # ids hashed into N rows, no vocab (malt.data.hashing)
    ignore_columns = ["note"]       # present in the files, not used
    strict_columns = false          # true: a column not named here is an error, not a warning

    [fields]
    user = ["age", "city"]
    ad = ["item", "shop", "category"]
    context = ["hour"]

    [id_sequences]                  # sequence column -> field whose table it shares
    item_seq = "item"
    shop_seq = { shares = "shop", length = 50 }

(YAML takes the same keys. All sequences share one length: they are position-aligned. Numeric
transforms are `standardise` (the default, with the training days' mean and std), `log1p` and
`none`; see `malt.data.numeric`.)

For incomplete multi-label data (KAML) a schema also names `campaign_column`,
`target_action_column` (a label index or label name per row; -1 or "other" for a target outside
the labels) and optionally `true_labels` (the unreported truth, one column per label, kept for
oracle training and evaluation only) and `reported_labels` (0/1 per label: whether the row's
campaign reports that action at all; read by the `reported` mask).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from malt.config_files import read_key_value_file
from malt.data.numeric import TRANSFORMS
from malt.errors import ConfigError
from malt.file_names import check_file_name

GROUPS = ("user", "ad", "context")
SCHEMA_FILE = "schema.toml"
"""The file a data set's own schema is read from when no other is named."""


@dataclass(frozen=True)
class CategoricalField:
    """A scalar categorical column, embedded with its own table."""

    name: str
    group: str


@dataclass(frozen=True)
class IdSequence:
    """A fixed-length list of ids looked up in the table of field `shares`."""

    name: str
    shares: str
    length: int


@dataclass(frozen=True)
class FloatSequence:
    """A fixed-length list of floats, position-aligned with the id sequences."""

    name: str
    length: int


@dataclass(frozen=True)
class NumericField:
    """A scalar number column, fed to the models after its transform (see `malt.data.numeric`)."""

    name: str
    transform: str = "standardise"


@dataclass(frozen=True)
class Schema:
    """Column roles of a data set. Field order is the column order of `Batch['sparse']`."""

    name: str
    user_column: str
    fields: tuple[CategoricalField, ...]
    labels: tuple[str, ...]
    id_sequences: tuple[IdSequence, ...] = ()
    float_sequences: tuple[FloatSequence, ...] = ()
    sequence_pad: str = "0"
    campaign_column: str | None = None
    target_action_column: str | None = None
    true_labels: tuple[str, ...] = ()
    reported_labels: tuple[str, ...] = ()
    ignore_columns: tuple[str, ...] = ()
    strict_columns: bool = False
    """Refuse files with columns the schema does not name (by default they are ignored, with
    one warning listing them)."""
    numeric: tuple[NumericField, ...] = ()
    numeric_fill: float | None = None
    """The value NaN, inf and missing numbers become; None: they are an error."""
    hash_buckets: tuple[tuple[str, int], ...] = ()
    """(field, rows) of the fields whose ids are hashed into that many rows, without a vocab
    file (see `malt.data.hashing`)."""

    def __post_init__(self) -> None:
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

    @property
    def sequence_length(self) -> int | None:
        """The common length of all sequences, or None when there are none."""
        lengths = {s.length for s in (*self.id_sequences, *self.float_sequences)}
        return lengths.pop() if len(lengths) == 1 else None

    @property
    def vocab_columns(self) -> tuple[str, ...]:
        """Every column that needs `vocabs/<column>.json` (hashed fields do not)."""
        hashed = dict(self.hash_buckets)
        return tuple(c for c in (self.user_column, *self.field_names) if c not in hashed)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column a day file must hold."""
        cols = [self.user_column, *self.field_names]
        cols += [s.name for s in self.id_sequences] + [s.name for s in self.float_sequences]
        cols += [f.name for f in self.numeric]
        cols += [c for c in (self.campaign_column, self.target_action_column) if c]
        cols += [*self.labels, *self.true_labels, *self.reported_labels]
        return tuple(dict.fromkeys(cols))

    def label_index(self, name: str) -> int:
        if name not in self.labels:
            raise ConfigError(f"unknown label '{name}'; the schema '{self.name}' has labels "
                              f"{list(self.labels)}")
        return self.labels.index(name)

    def fingerprint(self) -> str:
        """A short hash of everything that changes how files are read (not the name, nor
        whether unnamed columns are refused)."""
        content = {k: v for k, v in self.to_dict().items()
                   if k not in ("name", "strict_columns")}
        # Left out when unused, so schemas written before numeric columns keep their caches.
        if not self.numeric:
            del content["numeric"]
        if self.numeric_fill is None:
            del content["numeric_fill"]
        if not self.hash_buckets:
            del content["hash_buckets"]
        payload = json.dumps(content, sort_keys=True, allow_nan=False).encode()
        return hashlib.sha256(payload).hexdigest()[:16]

    # --- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The schema as `from_dict` reads it back."""
        out = asdict(self)
        out["numeric"] = {f.name: f.transform for f in self.numeric}
        out["hash_buckets"] = dict(self.hash_buckets)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, source: str = "schema") -> Schema:
        _check_keys(raw, _SCHEMA_KEYS, source)
        for key in ("user_column", "fields", "labels"):
            if key not in raw:
                raise ConfigError(f"{source}: missing required key '{key}'")
        if not isinstance(raw["labels"], (list, tuple)) or not raw["labels"]:
            raise ConfigError(f"{source}: 'labels' must be a non-empty list of column names")
        default_len = _int(raw.get("sequence_length", 20), "sequence_length", source)
        schema = cls(
            name=str(raw.get("name", Path(source).stem)),
            user_column=str(raw["user_column"]),
            fields=_parse_fields(raw["fields"], source),
            labels=tuple(str(x) for x in raw["labels"]),
            id_sequences=_parse_id_sequences(raw.get("id_sequences", {}), default_len, source),
            float_sequences=_parse_float_sequences(raw.get("float_sequences", []), default_len,
                                                   source),
            sequence_pad=str(raw.get("sequence_pad", "0")),
            campaign_column=raw.get("campaign_column"),
            target_action_column=raw.get("target_action_column"),
            true_labels=tuple(str(x) for x in raw.get("true_labels", ())),
            reported_labels=tuple(str(x) for x in raw.get("reported_labels", ())),
            ignore_columns=tuple(str(x) for x in raw.get("ignore_columns", ())),
            strict_columns=_bool(raw.get("strict_columns", False), "strict_columns", source),
            numeric=_parse_numeric(raw.get("numeric", []), source),
            numeric_fill=_number_or_none(raw.get("numeric_fill"), "numeric_fill", source),
            hash_buckets=_parse_buckets(raw.get("hash_buckets", {}), source),
        )
        if schema.id_sequences and "sequence_pad" not in raw:
            # No default: a pad that is also a real id would be masked out wherever it occurs.
            raise ConfigError(f"{source}: declare sequence_pad, the raw id that pads short id "
                              "sequences (one that is never a real id of the shared fields)")
        return schema

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        """Read a schema from a .toml, .yaml/.yml or .json file."""
        return cls.from_dict(read_key_value_file(path, "schema"), source=str(path))

    # --- validation ----------------------------------------------------------------------
    def _check(self) -> None:
        # Columns with a vocab name `vocabs/<column>.json`; labels name a run's plots.
        for key, name in [("user_column", self.user_column),
                          *(("fields", f) for f in self.field_names),
                          *([("campaign_column", self.campaign_column)]
                            if self.campaign_column is not None else []),
                          *(("labels", label) for label in self.labels)]:
            check_file_name(name, f"schema '{self.name}': {key}")
        names = [self.user_column, *self.field_names]
        names += [s.name for s in self.id_sequences] + [s.name for s in self.float_sequences]
        names += [f.name for f in self.numeric]
        names += [*self.labels, *self.true_labels, *self.reported_labels]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"schema '{self.name}': columns declared twice: {dupes}")
        if not self.labels:
            raise ConfigError(f"schema '{self.name}': declare at least one label column")
        if "cat" in self.labels:
            raise ConfigError(f"schema '{self.name}': 'cat' is reserved for the Cartesian view")
        for f in self.fields:
            if f.group not in GROUPS:
                raise ConfigError(f"schema '{self.name}': field '{f.name}' has group "
                                  f"'{f.group}', expected one of {GROUPS}")
        for f in self.numeric:
            if f.transform not in TRANSFORMS:
                raise ConfigError(f"schema '{self.name}': numeric column '{f.name}' has "
                                  f"transform {f.transform!r}, expected one of "
                                  f"{', '.join(TRANSFORMS)}")
        for name, buckets in self.hash_buckets:
            if name not in self.field_names:
                raise ConfigError(f"schema '{self.name}': hash_buckets names '{name}', which is "
                                  "not a categorical field (the user column keeps its vocab: "
                                  "GAUC groups by it)")
            if buckets < 1:
                raise ConfigError(f"schema '{self.name}': hash_buckets.{name} must be at least "
                                  f"1, got {buckets}")
            if any(s.shares == name for s in self.id_sequences):
                raise ConfigError(f"schema '{self.name}': '{name}' is shared by id sequences, "
                                  "whose padding needs a vocab; it cannot be hashed")
        for s in self.id_sequences:
            if s.shares not in self.field_names:
                raise ConfigError(f"schema '{self.name}': sequence '{s.name}' shares the table "
                                  f"of '{s.shares}', which is not a categorical field")
        sequences = (*self.id_sequences, *self.float_sequences)
        for s in sequences:
            if s.length < 1:
                raise ConfigError(f"schema '{self.name}': sequence '{s.name}' has length "
                                  f"{s.length}")
        if len({s.length for s in sequences}) > 1:
            raise ConfigError(f"schema '{self.name}': sequences are position-aligned and must "
                              f"share one length, got {[(s.name, s.length) for s in sequences]}")
        if self.true_labels and len(self.true_labels) != len(self.labels):
            raise ConfigError(f"schema '{self.name}': true_labels must match labels one to one")
        if self.reported_labels and len(self.reported_labels) != len(self.labels):
            raise ConfigError(f"schema '{self.name}': reported_labels must match labels one to "
                              "one")


_SCHEMA_KEYS = ("name", "user_column", "fields", "labels", "id_sequences", "float_sequences",
                "sequence_length", "sequence_pad", "campaign_column", "target_action_column",
                "true_labels", "reported_labels", "ignore_columns", "strict_columns", "numeric",
                "numeric_fill", "hash_buckets")


def _check_keys(raw: dict, valid: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; valid keys are {sorted(valid)}")


def _parse_numeric(raw: Any, source: str) -> tuple[NumericField, ...]:
    if isinstance(raw, (list, tuple)):
        raw = {str(name): "standardise" for name in raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: 'numeric' must be a list of columns or a table "
                          "column -> transform")
    return tuple(NumericField(str(name), transform) for name, transform in raw.items())


def _parse_buckets(raw: Any, source: str) -> tuple[tuple[str, int], ...]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: 'hash_buckets' must be a table field -> number of rows")
    return tuple((str(name), _int(n, f"hash_buckets.{name}", source)) for name, n in raw.items())


def _number_or_none(value: Any, what: str, source: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        raise ConfigError(f"{source}: {what} must be a finite number, got {value!r}")
    return float(value)


def _bool(value: Any, what: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{source}: {what} must be true or false, got {value!r}")
    return value


def _int(value: Any, what: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{source}: {what} must be an integer, got {value!r}")
    return value


def _entry(spec: Any, valid: tuple[str, ...], required: tuple[str, ...], where: str) -> dict:
    """A table describing one column: only `valid` keys, all of `required` present."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a table with keys {list(valid)}, got {spec!r}")
    _check_keys(spec, valid, where)
    missing = [k for k in required if k not in spec]
    if missing:
        raise ConfigError(f"{where}: missing keys {missing}")
    return spec


def _parse_fields(raw: Any, source: str) -> tuple[CategoricalField, ...]:
    if isinstance(raw, dict):
        _check_keys(raw, GROUPS, f"{source} [fields]")
        bad = [g for g, names in raw.items() if not isinstance(names, (list, tuple))]
        if bad:
            raise ConfigError(f"{source}: [fields] {bad[0]} must be a list of column names")
        return tuple(CategoricalField(str(n), g) for g in GROUPS for n in raw.get(g, ()))
    if isinstance(raw, (list, tuple)):
        return tuple(CategoricalField(str(f["name"]), str(f["group"])) for f in
                     (_entry(f, ("name", "group"), ("name", "group"), f"{source} fields")
                      for f in raw))
    raise ConfigError(f"{source}: 'fields' must be a table of groups or a list")


def _parse_id_sequences(raw: Any, default_len: int, source: str) -> tuple[IdSequence, ...]:
    where = f"{source} id_sequences"
    keys = ("name", "shares", "length")
    if isinstance(raw, (list, tuple)):
        specs = [_entry(s, keys, ("name", "shares"), where) for s in raw]
    elif isinstance(raw, dict):
        specs = [{"name": name, "shares": spec} if isinstance(spec, str)
                 else {"name": name, **_entry(spec, keys[1:], ("shares",), f"{where}.{name}")}
                 for name, spec in raw.items()]
    else:
        raise ConfigError(f"{source}: 'id_sequences' must map sequence -> shared field")
    return tuple(IdSequence(str(s["name"]), str(s["shares"]),
                            _int(s.get("length", default_len), f"length of {s['name']}", source))
                 for s in specs)


def _parse_float_sequences(raw: Any, default_len: int, source: str) -> tuple[FloatSequence, ...]:
    if isinstance(raw, dict):
        return tuple(FloatSequence(str(n), _int(length, f"length of {n}", source))
                     for n, length in raw.items())
    if isinstance(raw, (list, tuple)):
        specs = [{"name": s} if isinstance(s, str)
                 else _entry(s, ("name", "length"), ("name",), f"{source} float_sequences")
                 for s in raw]
        return tuple(FloatSequence(str(s["name"]), _int(s.get("length", default_len),
                                                        f"length of {s['name']}", source))
                     for s in specs)
    raise ConfigError(f"{source}: 'float_sequences' must be a list or a table")


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
    )


MAC = _mac_schema()
"""The MAC release: 1 user id + 6 user, 6 ad and 4 context fields, 3 purchase-sequence id
columns sharing the ad_feat0..2 tables, 2 similarity-score sequences, labels last/first/linear/mta
(the DDA label is called `mta` in the release)."""


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
