"""Score rows with an exported ONNX file and ONNX Runtime alone (no torch, no malt model code):
the file says what it takes, the vocab files map raw ids to table rows.

    python examples/serve_onnx.py [WORK_DIR]      # after examples/quickstart.py WORK_DIR
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pandas as pd
import pyarrow.parquet as pq

work = Path(sys.argv[1] if len(sys.argv) > 1 else "malt-quickstart")
model = onnx.load(str(work / "moae.onnx"))
about = json.loads({p.key: p.value for p in model.metadata_props}["malt"])
schema = about["schema"]
print("inputs:", [(i["name"], i["dtype"], i["shape"]) for i in about["inputs"]])

rows = pq.read_table(work / "data" / "test" / "test.parquet").to_pandas()


def table_rows(column: str, raw: np.ndarray) -> np.ndarray:
    """Raw ids -> embedding rows through vocabs/<column>.json (unknown ids: the last row)."""
    vocab = json.loads((work / "data" / "vocabs" / f"{column}.json").read_text())
    index = pd.Index(list(vocab)).get_indexer(raw.astype(str).ravel())
    found = np.asarray(list(vocab.values()))[index]
    return np.where(index >= 0, found, about["vocab_sizes"][column] - 1).reshape(raw.shape)


fields = [f["name"] for f in schema["fields"]]
feeds = {"sparse": np.stack([table_rows(f, rows[f].to_numpy()) for f in fields], 1)}
feeds["seq"] = np.stack([table_rows(s["shares"], np.stack(rows[s["name"]].to_numpy()))
                         for s in schema["id_sequences"]], 1)
feeds["dense_seq"] = np.stack([np.stack(rows[s["name"]].to_numpy())
                               for s in schema["float_sequences"]], 1).astype(np.float32)
session = onnxruntime.InferenceSession(model.SerializeToString())
outputs = session.run(None, {i["name"]: feeds[i["name"]].astype(i["dtype"])
                             for i in about["inputs"]})
for spec, values in zip(about["outputs"], outputs):
    print(f"{spec['name']}: mean {values.mean():.4f} over {len(values):,} rows")
np.save(work / "onnx_scores.npy", np.stack(outputs, 1))
