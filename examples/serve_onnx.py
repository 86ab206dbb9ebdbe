"""Score rows with an exported ONNX file and ONNX Runtime alone (no torch, no malt model code):
the file says what it takes, the vocab files map raw ids to table rows.

    python examples/serve_onnx.py [WORK_DIR]      # after examples/quickstart.py WORK_DIR
    python examples/serve_onnx.py WORK_DIR MODEL.onnx ROWS.parquet VOCAB_DIR

The inputs are built from the description the export stores in the file (`malt` metadata),
only those the model declares: `sparse` (the categorical fields, schema order), `seq` and
`dense_seq` (when the schema has sequences), `bags` and `bag_lengths` (when it has bags: each
bag's first `max_length` ids, row 0 after them), `numeric` (the raw numeric columns in the order
of the schema's `numeric` table; the model applies their log1p / standardisation itself) and
`target_action` (STAR on data with a target-action column). When the run was calibrated
(`malt calibrate`), the outputs are calibrated probabilities: the calibrators are in the graph.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

work = Path(sys.argv[1] if len(sys.argv) > 1 else "malt-quickstart")
model_file = Path(sys.argv[2]) if len(sys.argv) > 2 else work / "moae.onnx"
rows_file = Path(sys.argv[3]) if len(sys.argv) > 3 else work / "data" / "test" / "test.parquet"
vocab_dir = Path(sys.argv[4]) if len(sys.argv) > 4 else work / "data" / "vocabs"

model = onnx.load(str(model_file))
about = json.loads({p.key: p.value for p in model.metadata_props}["malt"])
schema = about["schema"]
print("inputs:", [(i["name"], i["dtype"], i["shape"]) for i in about["inputs"]])
if about.get("calibration"):
    print("calibrated:", about["calibration"]["method"])

table = pq.read_table(rows_file)
rows = table.to_pandas()


def table_rows(column: str, raw: np.ndarray) -> np.ndarray:
    """Raw ids -> embedding rows through <vocabs>/<column>.json (unknown ids: the last row)."""
    vocab = json.loads((vocab_dir / f"{column}.json").read_text())
    index = pd.Index(list(vocab)).get_indexer(raw.astype(str).ravel())
    found = np.asarray(list(vocab.values()))[index]
    return np.where(index >= 0, found, about["vocab_sizes"][column] - 1).reshape(raw.shape)


def sparse() -> np.ndarray:
    return np.stack([table_rows(f["name"], rows[f["name"]].to_numpy())
                     for f in schema["fields"]], 1)


def seq() -> np.ndarray:
    return np.stack([table_rows(s["shares"], np.stack(rows[s["name"]].to_numpy()))
                     for s in schema["id_sequences"]], 1)


def dense_seq() -> np.ndarray:
    return np.stack([np.stack(rows[s["name"]].to_numpy())
                     for s in schema["float_sequences"]], 1)


def bag_rows(column: str, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The table rows of each row's first `max_length` ids of the bag `column`, row 0 after
    them ([N, width]), and how many are kept per row ([N])."""
    lists = table[column].combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy().astype(np.int64)
    kept = np.minimum(lengths, schema["bags"][column]["max_length"])
    ids = pc.list_flatten(lists).to_numpy(zero_copy_only=False)
    positions = np.arange(width)
    present = positions < kept[:, None]
    out = np.zeros((len(lengths), width), dtype=np.int64)
    out[present] = table_rows(column, ids[((np.cumsum(lengths) - lengths)[:, None]
                                           + positions)[present]])
    return out, kept


def bags() -> np.ndarray:
    width = max(b["max_length"] for b in schema["bags"].values())
    return np.stack([bag_rows(b, width)[0] for b in schema["bags"]], 1)


def bag_lengths() -> np.ndarray:
    return np.stack([bag_rows(b, 1)[1] for b in schema["bags"]], 1)


def numeric() -> np.ndarray:
    """The raw values [N, columns], the schema's `numeric` order; numbers that are not (null,
    NaN, inf) become the schema's `numeric_fill`, as `malt predict` reads them."""
    values = np.stack([rows[c].to_numpy(dtype=np.float64, na_value=np.nan)
                       for c in schema["numeric"]], 1)
    if schema.get("numeric_fill") is not None:
        values = np.where(np.isfinite(values), values, schema["numeric_fill"])
    return values


def target_action() -> np.ndarray:
    """The label index of each row's target action: the column holds indices already, or
    label names (anything else, such as `other`: -1)."""
    actions = rows[schema["target_action_column"]]
    if pd.api.types.is_integer_dtype(actions):
        return actions.to_numpy()
    return pd.Index(schema["labels"]).get_indexer(actions.astype(str))


build = {"sparse": sparse, "seq": seq, "dense_seq": dense_seq, "bags": bags,
         "bag_lengths": bag_lengths, "numeric": numeric, "target_action": target_action}
feeds = {i["name"]: build[i["name"]]().astype(i["dtype"]) for i in about["inputs"]}
session = onnxruntime.InferenceSession(model.SerializeToString())
outputs = session.run(None, feeds)
for spec, values in zip(about["outputs"], outputs):
    print(f"{spec['name']}: mean {values.mean():.4f} over {len(values):,} rows")
np.save(work / "onnx_scores.npy", np.stack(outputs, 1))
