"""The service's counters in the Prometheus text exposition format (`GET /metrics`): requests
by path and status, request latency as a histogram, rows scored, model calls, and the
out-of-vocabulary ids per column (with their rate per scored row), and the requests in
flight."""

from __future__ import annotations

import bisect
from collections import Counter

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)
"""Upper bounds (seconds) of the latency histogram's buckets: a millisecond scale, as a
scoring request should take."""


class ServiceMetrics:
    """Counters updated by the event loop's thread (so without locks) and their text."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.latency: dict[str, list[int]] = {}
        """Path -> requests per bucket (not cumulative), the last one past every bound."""
        self.latency_sum: Counter[str] = Counter()
        self.rows = 0
        self.oov: Counter[str] = Counter()
        self.in_flight = 0
        """Requests received and not yet answered (this one included, for `/metrics`)."""

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        self.requests[path, status] += 1
        buckets = self.latency.setdefault(path, [0] * (len(LATENCY_BUCKETS) + 1))
        buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum[path] += seconds

    def observe_scored(self, rows: int, oov: dict[str, int]) -> None:
        self.rows += rows
        self.oov.update(oov)

    def text(self, model_calls: int, version: str) -> str:
        """The exposition text (format version 0.0.4)."""
        lines = ["# HELP malt_model_info The model being served.",
                 "# TYPE malt_model_info gauge",
                 f'malt_model_info{{version="{_label(version)}"}} 1',
                 "# HELP malt_requests_in_flight Requests received and not yet answered.",
                 "# TYPE malt_requests_in_flight gauge",
                 f"malt_requests_in_flight {self.in_flight}",
                 "# HELP malt_requests_total HTTP requests answered, by path and status.",
                 "# TYPE malt_requests_total counter"]
        lines += [f'malt_requests_total{{path="{_label(path)}",status="{status}"}} {n}'
                  for (path, status), n in sorted(self.requests.items())]
        lines += ["# HELP malt_request_seconds Time to answer a request.",
                  "# TYPE malt_request_seconds histogram"]
        for path, buckets in sorted(self.latency.items()):
            label = _label(path)
            total = 0
            for bound, n in zip((*LATENCY_BUCKETS, float("inf")), buckets):
                total += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f'malt_request_seconds_bucket{{path="{label}",le="{le}"}} {total}')
            lines.append(f'malt_request_seconds_sum{{path="{label}"}} '
                         f"{self.latency_sum[path]!r}")
            lines.append(f'malt_request_seconds_count{{path="{label}"}} {total}')
        lines += ["# HELP malt_rows_scored_total Rows scored.",
                  "# TYPE malt_rows_scored_total counter",
                  f"malt_rows_scored_total {self.rows}",
                  "# HELP malt_model_calls_total Model calls (batches of requests).",
                  "# TYPE malt_model_calls_total counter",
                  f"malt_model_calls_total {model_calls}",
                  "# HELP malt_oov_ids_total Ids out of the run's vocabs, by column.",
                  "# TYPE malt_oov_ids_total counter"]
        lines += [f'malt_oov_ids_total{{column="{_label(c)}"}} {n}'
                  for c, n in sorted(self.oov.items())]
        lines += ["# HELP malt_oov_rate Out-of-vocabulary ids per scored row, by column.",
                  "# TYPE malt_oov_rate gauge"]
        lines += [f'malt_oov_rate{{column="{_label(c)}"}} {n / self.rows!r}'
                  for c, n in sorted(self.oov.items()) if self.rows]
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    """A label value escaped as the format asks (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
