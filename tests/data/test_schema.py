"""Schema files (TOML / YAML) and a user's own data set read through one."""

from __future__ import annotations

import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import malt.data.schema as schema_module
from malt.data import MAC, Schema, prepare, schema_for
from malt.data.batches import DayBatches
from malt.data.layout import day_path, write_day, write_vocab
from malt.errors import ConfigError, DataError
from support.mac_data import fixed_lists

SHOP_TOML = """
name = "shop"
user_column = "uid"
labels = ["last", "first", "linear", "position", "dda"]
ignore_columns = ["note"]

[fields]
user = ["age", "city"]
ad = ["item", "shop"]
context = ["hour"]
"""

SHOP_YAML = """
name: shop
user_column: uid
labels: [last, first, linear, position, dda]
ignore_columns: [note]
fields:
  user: [age, city]
  ad: [item, shop]
  context: [hour]
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_toml_and_yaml_give_the_same_schema(tmp_path):
    toml = Schema.load(write(tmp_path, "s.toml", SHOP_TOML))
    yaml = Schema.load(write(tmp_path, "s.yaml", SHOP_YAML))
    assert toml == yaml
    assert toml.field_names == ("age", "city", "item", "shop", "hour")
    assert toml.group_indices("ad") == [2, 3] and toml.group_indices("context") == [4]
    assert toml.labels == ("last", "first", "linear", "position", "dda")
    assert toml.id_sequences == () and toml.sequence_length is None
    assert schema_for(None, tmp_path / "s.toml") == toml and schema_for(None) is MAC
    assert schema_for(tmp_path) is MAC  # no schema.toml in the data directory
    (tmp_path / "schema.toml").write_text((tmp_path / "s.toml").read_text())
    assert schema_for(tmp_path) == toml  # the data set's own schema
    assert schema_for(tmp_path, tmp_path / "s.yaml") == Schema.load(tmp_path / "s.yaml")


def test_the_documented_example_loads(tmp_path):
    doc = schema_module.__doc__
    example = doc[doc.index("    name = "):doc.index("(YAML")]
    schema = Schema.load(write(tmp_path, "example.toml", example))
    assert [(s.name, s.shares, s.length) for s in schema.id_sequences] == [
        ("item_seq", "item", 50), ("shop_seq", "shop", 50)]
    assert [(s.name, s.length) for s in schema.float_sequences] == [("image_sim", 50)]
    assert schema.ignore_columns == ("note",)
    assert schema.bags == (schema_module.Bag("tags", "ad", "mean", 16),)


def test_mac_round_trips_through_a_dict():
    assert Schema.from_dict(MAC.to_dict()) == MAC


@pytest.mark.parametrize("text, bad, valid", [
    ('user_columns = "uid"\n' + SHOP_TOML, "user_columns", "user_column"),
    ('sequence_lenght = 5\n' + SHOP_TOML, "sequence_lenght", "sequence_length"),
    (SHOP_TOML + 'sequence_length = 5\n', "sequence_length", "context"),  # inside [fields]
    (SHOP_TOML.replace("context =", "contxt ="), "contxt", "context"),
    (SHOP_TOML + '[id_sequences]\nitem_seq = { shares = "item", lenght = 5 }\n', "lenght",
     "length"),
])
def test_unknown_keys_are_rejected_with_the_valid_ones_named(tmp_path, text, bad, valid):
    with pytest.raises(ConfigError) as info:
        Schema.load(write(tmp_path, "s.toml", text))
    assert bad in str(info.value) and valid in str(info.value)


def test_unknown_yaml_key(tmp_path):
    with pytest.raises(ConfigError, match=r"s.yml: unknown key 'labes'; did you mean 'labels'\?"):
        Schema.load(write(tmp_path, "s.yml", SHOP_YAML.replace("labels:", "labes:")))


@pytest.mark.parametrize("text, message", [
    (SHOP_TOML.replace('labels = ["last", "first", "linear", "position", "dda"]',
                       'labels = "last"'), "labels = 'last': expected a list of strings"),
    ("strict_columns = 1\n" + SHOP_TOML, "strict_columns = 1: expected true or false"),
    ("float_sequences = 3\n" + SHOP_TOML, "float_sequences = 3: expected a list of strings or "
                                           "tables with keys name, length or a table of "
                                           "integers >= 1"),
    (SHOP_TOML.replace('["age", "city"]', '["age", 7]'),
     "fields.user = ['age', 7]: expected a list of strings"),
    ('sequence_pad = "0"\n' + SHOP_TOML + '[id_sequences]\nhist = { shares = 3 }\n',
     "id_sequences.hist.shares = 3: expected a string"),
])
def test_a_value_of_the_wrong_type_names_key_value_and_type(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        Schema.load(write(tmp_path, "s.toml", text))
    assert str(info.value) == f"{tmp_path / 's.toml'}: {message}"


@pytest.mark.parametrize("text, message", [
    ('user_colum = "uid"\n' + SHOP_TOML.replace('user_column = "uid"', ""),
     "unknown key 'user_colum'; did you mean 'user_column'?"),
    (SHOP_TOML.replace("[fields]\nuser = [\"age\", \"city\"]\nad = [\"item\", \"shop\"]\n"
                       "context = [\"hour\"]\n",
                       'fields = [{ name = "age", group = "usr" }]\n'),
     "fields[0].group = 'usr': expected one of 'user', 'ad', 'context'; did you mean 'user'?"),
    ('sequence_pad = "0"\n' + SHOP_TOML + '[[id_sequences]]\nname = "hist"\nshare = "item"\n',
     "id_sequences[0]: unknown key 'share'; did you mean 'shares'?"),
    ('sequence_pad = "0"\n' + SHOP_TOML + '[[id_sequences]]\nname = "hist"\n',
     "id_sequences[0]: missing required key 'shares'"),
])
def test_unknown_keys_and_choices_name_the_closest_valid_one(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        Schema.load(write(tmp_path, "s.toml", text))
    assert str(info.value) == f"{tmp_path / 's.toml'}: {message}"


def test_list_and_table_forms_give_the_same_schema(tmp_path):
    tables = Schema.load(write(tmp_path, "x.toml", 'sequence_pad = -1\nsequence_length = 2\n'
                               'float_sequences = ["sim"]\n' + HISTORY_SCHEMA))
    lists = Schema.from_dict({
        "name": "x", "user_column": "uid", "labels": ["y"], "sequence_pad": "-1",
        "sequence_length": 2, "fields": [{"name": "item", "group": "ad"}],
        "id_sequences": [{"name": "history", "shares": "item"}],
        "float_sequences": [{"name": "sim"}]})
    assert tables == lists and tables.sequence_pad == "-1"  # an integer pad is read as text
    assert [(s.name, s.length) for s in lists.float_sequences] == [("sim", 2)]


@pytest.mark.parametrize("name, text, message", [
    ("s.yaml", "user_column: [unclosed", "not valid"),
    ("s.toml", "user_column = ", "not valid"),
    ("s.yaml", "- a\n- b\n", "table of keys"),
    ("s.txt", "x", "use .toml"),
    ("s.toml", SHOP_TOML.replace('user_column = "uid"', ""), "missing required key"),
    ("s.toml", SHOP_TOML.replace('["age", "city"]', '"age"'),
     "fields.user = 'age': expected a list of strings"),
    ("s.toml", "sequence_length = 2.5\n" + SHOP_TOML,
     "sequence_length = 2.5: expected an integer >= 1"),
    ("s.toml", SHOP_TOML.replace('"last", ', '"cat", '), "reserved"),
    ("s.toml", SHOP_TOML.replace('"dda"', '"age"'), "declared twice"),
    ("s.toml", SHOP_TOML + '[id_sequences]\nx = "nope"\n', "not a categorical field"),
    ("s.toml", 'float_sequences = {a = 3}\n' + SHOP_TOML + '[id_sequences]\nx = "item"\n',
     "the float sequence 'a' holds 3 values and 'x' 20"),
])
def test_bad_schema_files(tmp_path, name, text, message):
    with pytest.raises(ConfigError, match=message):
        Schema.load(write(tmp_path, name, text))


def test_missing_schema_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Schema.load(tmp_path / "nope.toml")


def write_shop_data(root, rows=90, seed=0):
    """String user ids, no sequences, five attribution labels and an ignored column."""
    rng = np.random.default_rng(seed)
    for d in range(3):
        split, index = ("test", 0) if d == 2 else ("train", d)
        table = {"uid": pa.array([f"u{i}" for i in rng.integers(0, 20, rows)]),
                 "age": pa.array(rng.integers(18, 70, rows)),
                 "city": pa.array(rng.choice(["paris", "lyon", "oslo"], rows)),
                 "item": pa.array(rng.integers(0, 1000, rows) * 7919),
                 "shop": pa.array(rng.integers(0, 5, rows), type=pa.int32()),
                 "hour": pa.array(rng.integers(0, 24, rows)),
                 "note": pa.array(["free text"] * rows)}
        for label in ("last", "first", "linear", "position", "dda"):
            table[label] = pa.array(np.where(rng.random(rows) < 0.3, rng.random(rows), 0.0))
        write_day(day_path(root, split, index), pa.table(table))
    vocabs = {"uid": [f"u{i}" for i in range(20)], "age": [str(a) for a in range(18, 70)],
              "city": ["paris", "lyon"], "item": [str(i * 7919) for i in range(1000)],
              "shop": [str(i) for i in range(5)], "hour": [str(h) for h in range(24)]}
    for column, ids in vocabs.items():
        write_vocab(root / "vocabs", column, ids)
    return root


def test_own_data_set_through_a_schema_file(tmp_path):
    schema = Schema.load(write(tmp_path, "shop.toml", SHOP_TOML))
    root = write_shop_data(tmp_path / "shop")
    dataset = prepare(root, schema)
    assert dataset.vocab.sizes == {"age": 53, "city": 3, "item": 1001, "shop": 6, "hour": 25}
    assert dataset.vocab.sequence_pad == {}
    day = dataset.train[0]
    assert set(day.arrays()) == {"sparse", "weights", "user"}
    # "oslo" is not in the city vocab: it maps to the reserved row and is counted.
    table = pq.read_table(day.source)
    oslo = int(np.count_nonzero(table["city"].to_numpy(zero_copy_only=False) == "oslo"))
    assert oslo > 0 and day.stats.oov["city"] == oslo
    assert day.arrays()["sparse"][:, 1].max() == 2
    batches = list(DayBatches(day, 32, shuffle=True, seed=1))
    assert [len(b["index"]) for b in batches] == [32, 32, 26]
    for batch in batches:
        assert set(batch) == {"sparse", "weights", "labels", "user", "index", "step_rows"}
        assert batch["sparse"].shape[1] == 5 and batch["weights"].shape[1] == 5
        np.testing.assert_array_equal(batch["weights"].numpy(),
                                      np.stack([table[c].to_numpy() for c in schema.labels],
                                               1)[batch["index"].numpy()].astype(np.float32))


def test_models_adapt_to_a_schema_without_sequences(tmp_path):
    from malt.data.task import Task
    from malt.models import build_model

    schema = Schema.load(write(tmp_path, "shop.toml", SHOP_TOML))
    dataset = prepare(write_shop_data(tmp_path / "shop"), schema)
    batch = next(iter(DayBatches(dataset.train[0], 64)))
    task = Task("dda", aux=("position", "cat"))
    torch.manual_seed(0)
    model = build_model("moae", dataset.schema, dataset.vocab, task)
    out = model(batch)
    loss = model.loss_terms(out, batch).total(1.0)
    loss.backward()
    assert torch.isfinite(loss) and out.logits["dda"].shape == (64,)


def test_own_sequences_share_a_table_and_mark_padding(tmp_path):
    text = """
    user_column = "uid"
    labels = ["y"]
    sequence_pad = "-1"
    float_sequences = ["sim"]
    [fields]
    ad = ["item"]
    [id_sequences]
    history = { shares = "item", length = 4 }
    """
    text = text.replace('float_sequences = ["sim"]', "float_sequences = { sim = 4 }")
    schema = Schema.load(write(tmp_path, "s.toml", text))
    root = tmp_path / "d"
    history = np.array([[5, 6, -1, -1], [7, 99, 5, -1], [-1, -1, -1, -1]])
    write_day(day_path(root, "test", 0), pa.table({
        "uid": pa.array([1, 2, 1]), "item": pa.array([5, 6, 7]),
        "history": fixed_lists(history),
        "sim": fixed_lists(np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)),
        "y": pa.array([0.0, 1.0, 0.5])}))
    write_vocab(root / "vocabs", "uid", ["1", "2"])
    write_vocab(root / "vocabs", "item", ["5", "6", "7"])
    dataset = prepare(root, schema)
    # The pad id has no row of its own: it maps to the OOV row, and is not counted as OOV.
    assert dataset.vocab.sequence_pad == {"history": 3}
    day = dataset.test[0]
    np.testing.assert_array_equal(day.arrays()["seq"][:, 0, :],
                                  [[0, 1, 3, 3], [2, 3, 0, 3], [3, 3, 3, 3]])
    assert day.stats.oov["history"] == 1 and day.stats.users == 2
    batch = next(iter(DayBatches(day, 8)))
    assert batch["seq"].shape == (3, 1, 4) and batch["dense_seq"].shape == (3, 1, 4)
    assert batch["labels"][:, 0].tolist() == [0.0, 1.0, 1.0]


def write_kaml(root, target_action, campaign):
    n = len(target_action)
    rng = np.random.default_rng(0)
    table = {"uid": pa.array(rng.integers(0, 3, n)), "item": pa.array(rng.integers(0, 4, n)),
             "camp": campaign, "target": target_action}
    for label in ("click_buy", "cart_buy"):
        table[label] = pa.array(rng.random(n))
        table[f"true_{label}"] = pa.array(rng.random(n))
    write_day(day_path(root, "test", 0), pa.table(table))
    write_vocab(root / "vocabs", "uid", ["0", "1", "2"])
    write_vocab(root / "vocabs", "item", ["0", "1", "2", "3"])
    return root


KAML = Schema.from_dict({"user_column": "uid", "fields": {"ad": ["item"]},
                         "labels": ["click_buy", "cart_buy"], "campaign_column": "camp",
                         "target_action_column": "target",
                         "true_labels": ["true_click_buy", "true_cart_buy"]})


def test_incomplete_label_columns(tmp_path):
    root = write_kaml(tmp_path / "d", pa.array(["cart_buy", "click_buy", "cart_buy"]),
                      pa.array([7, 7, 9]))
    day = prepare(root, KAML).test[0]
    arrays = day.arrays()
    assert arrays["target_action"].tolist() == [1, 0, 1]
    assert arrays["campaign"].tolist() == [7, 7, 9]
    assert arrays["true_weights"].shape == (3, 2)
    batch = next(iter(DayBatches(day, 8)))
    assert batch["target_action"].dtype == torch.int64 and batch["campaign"].dtype == torch.int64
    assert batch["true_weights"].dtype == torch.float32
    # Target actions may also be given as label indices; string campaigns need a vocab.
    root = write_kaml(tmp_path / "e", pa.array([1, 0, 1]), pa.array(["a", "b", "a"]))
    with pytest.raises(DataError, match="campaign") as info:
        prepare(root, KAML)
    assert info.value.column == "camp"
    write_vocab(root / "vocabs", "camp", ["b", "a"])
    arrays = prepare(root, KAML).test[0].arrays()
    assert arrays["campaign"].tolist() == [1, 0, 1]
    assert arrays["target_action"].tolist() == [1, 0, 1]


@pytest.mark.parametrize("target, row", [(pa.array(["cart_buy", "view", "cart_buy"]), 1),
                                         (pa.array([0, 1, 2]), 2),
                                         (pa.array(["cart_buy", "cart_buy", None]), 2)])
def test_bad_target_action(tmp_path, target, row):
    root = write_kaml(tmp_path / "d", target, pa.array([1, 2, 3]))
    with pytest.raises(DataError) as info:
        prepare(root, KAML)
    assert (info.value.column, info.value.row) == ("target", row)


HISTORY_SCHEMA = """
user_column = "uid"
labels = ["y"]
[fields]
ad = ["item"]
[id_sequences]
history = { shares = "item", length = 2 }
"""


def test_a_schema_with_id_sequences_declares_its_pad(tmp_path):
    with pytest.raises(ConfigError, match="s.toml: declare sequence_pad, the raw id that pads"):
        Schema.load(write(tmp_path, "s.toml", HISTORY_SCHEMA))
    assert Schema.load(write(tmp_path, "p.toml", 'sequence_pad = "-1"\n' + HISTORY_SCHEMA)
                       ).sequence_pad == "-1"
    assert Schema.load(write(tmp_path, "n.toml", SHOP_TOML)).sequence_pad == "0"  # no sequences


@pytest.mark.parametrize("ids", ["int", "str"])
def test_a_pad_that_is_a_real_id_of_the_shared_field_is_refused(tmp_path, ids):
    schema = Schema.load(write(tmp_path, "s.toml", 'sequence_pad = "0"\n' + HISTORY_SCHEMA))
    root = tmp_path / "d"
    items = [5, 0, 7] if ids == "int" else ["5", "0", "7"]
    path = day_path(root, "test", 0)
    write_day(path, pa.table({
        "uid": pa.array([1, 2, 1]), "item": pa.array(items),
        "history": fixed_lists(np.array([[5, 0], [7, 5], [0, 0]])),
        "y": pa.array([0.0, 1.0, 0.5])}))
    write_vocab(root / "vocabs", "uid", ["1", "2"])
    write_vocab(root / "vocabs", "item", ["5", "7"])
    with pytest.raises(DataError) as err:
        prepare(root, schema)
    assert (err.value.file, err.value.column, err.value.row) == (str(path), "item", 1)
    assert str(err.value).endswith("the schema's sequence_pad '0' is a real id of this field, "
                                   "whose table the id sequences share: padding would hide "
                                   "it; declare another sequence_pad")
