"""Simulate a small data set, train MoAE on it, score rows without labels, export the model.

    python examples/quickstart.py [WORK_DIR]
"""

import sys
from pathlib import Path

import pyarrow.parquet as pq

import malt

work = Path(sys.argv[1] if len(sys.argv) > 1 else "malt-quickstart")
data = malt.simulate(work / "data", size="tiny", seed=7)
run = malt.train({"seed": 7, "data": {"path": str(data)}, "model": {"name": "moae"},
                  "task": {"main": "last", "aux": ["first", "linear"]}}, work / "run")
print(f"test GAUC of last-click: {run.metrics.main_metrics.gauc:.4f}")

labels = ["last", "first", "linear", "mta"]
features = pq.read_table(data / "test" / "test.parquet").drop_columns(labels).to_pandas()
scores = run.predict(features, keep=["ad_feat0"])   # p_last, p_first, p_linear, user_id, ad_feat0
print(scores.head())
scores.to_parquet(work / "scores.parquet")
print(f"exported to {run.export(work / 'moae.onnx', overwrite=True)}")
