"""The Prometheus text of the service's counters: cumulative histogram buckets whose bounds
include their value, counts by label, escaped label values."""

from __future__ import annotations

import re

from malt.serve.metrics import LATENCY_BUCKETS, ServiceMetrics


def samples(text: str) -> dict[str, float]:
    """Sample line -> value (comments left out)."""
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if not line.startswith("#")}


def test_latencies_fill_cumulative_buckets_whose_bound_includes_the_value():
    metrics = ServiceMetrics()
    for seconds in (0.0004, 0.001, 0.0011, 0.3, 60.0):
        metrics.observe_request("/predict", 200, seconds)
    metrics.observe_request("/predict", 422, 0.002)
    got = samples(metrics.text(model_calls=3, version="run-abc"))
    bucket = 'malt_request_seconds_bucket{path="/predict",le="%s"}'
    assert got[bucket % repr(0.0005)] == 1
    assert got[bucket % repr(0.001)] == 2  # 0.001 is in the bucket le=0.001
    assert got[bucket % repr(0.0025)] == 4
    assert got[bucket % repr(0.5)] == 5
    assert got[bucket % repr(LATENCY_BUCKETS[-1])] == 5
    assert got[bucket % "+Inf"] == 6
    counts = [v for k, v in got.items() if k.startswith("malt_request_seconds_bucket")]
    assert counts == sorted(counts)
    assert got['malt_request_seconds_count{path="/predict"}'] == 6
    assert abs(got['malt_request_seconds_sum{path="/predict"}'] - 60.3045) < 1e-9
    assert got['malt_requests_total{path="/predict",status="200"}'] == 5
    assert got['malt_requests_total{path="/predict",status="422"}'] == 1
    assert got["malt_model_calls_total"] == 3


def test_oov_rates_are_per_scored_row_and_labels_are_escaped():
    metrics = ServiceMetrics()
    metrics.observe_scored(10, {'odd"col\\': 2, "user_id": 0})
    metrics.observe_scored(30, {'odd"col\\': 1, "user_id": 0})
    text = metrics.text(model_calls=2, version='v"1')
    got = samples(text)
    assert got["malt_rows_scored_total"] == 40
    assert got['malt_oov_ids_total{column="odd\\"col\\\\"}'] == 3
    assert got['malt_oov_rate{column="odd\\"col\\\\"}'] == 3 / 40
    assert got['malt_oov_rate{column="user_id"}'] == 0
    assert got['malt_model_info{version="v\\"1"}'] == 1
    # every sample line is `name{labels} value` or `name value`
    for line in text.splitlines():
        assert line.startswith("#") or re.fullmatch(r'[a-z_]+(\{.*\})? \S+', line), line
