"""Dynamic batching: requests queued together are scored in one model call (per calibration
choice, within the batch's row limit), each gets its own rows' scores, and a malformed one
fails alone."""

from __future__ import annotations

import asyncio

import numpy as np
import pyarrow as pa
import pytest

from malt.serve.batching import Batcher
from malt.serve.model import ModelSource, ServedModel
from malt.serve.requests import RequestError, ScoringRequest


def request(rows: list[dict], calibrated: bool = True) -> ScoringRequest:
    return ScoringRequest(pa.Table.from_pylist(rows), calibrated)


def score_together(model: ServedModel, requests: list[ScoringRequest], *, batch_rows: int
                   ) -> tuple[list, int]:
    """The answers (or errors) of `requests` queued at once, and the model calls made."""
    async def together() -> tuple[list, int]:
        batcher = Batcher(model, batch_rows=batch_rows, wait_s=0.0)
        await batcher.start()
        # queued before the worker runs: each `score` puts its request, then waits
        answers = await asyncio.gather(*(batcher.score(r) for r in requests),
                                       return_exceptions=True)
        await batcher.stop()
        return answers, batcher.model_calls
    return asyncio.run(together())


@pytest.fixture(scope="module")
def model(run) -> ServedModel:
    return ServedModel.load(ModelSource("run", str(run)))


def test_requests_queued_together_share_one_model_call(model, test_rows):
    requests = [request(test_rows[i * 4:i * 4 + 4]) for i in range(10)]
    alone = [score_together(model, [r], batch_rows=4096)[0][0] for r in requests]
    answers, calls = score_together(model, requests, batch_rows=4096)
    assert calls == 1
    for single, batched in zip(alone, answers):
        np.testing.assert_allclose(batched.probs, single.probs, rtol=0, atol=1e-6)
        assert batched.oov == single.oov


def test_a_batch_holds_at_most_batch_rows_and_one_call_per_calibration(model, test_rows):
    requests = [request(test_rows[i * 4:i * 4 + 4]) for i in range(10)]
    _, calls = score_together(model, requests, batch_rows=8)  # two requests a call
    assert calls == 5
    mixed = [request(test_rows[:4], calibrated=i % 2 == 0) for i in range(6)]
    answers, calls = score_together(model, mixed, batch_rows=4096)
    assert calls == 2
    assert [a.calibrated for a in answers] == [True, False] * 3
    assert not np.allclose(answers[0].probs, answers[1].probs)


def test_a_malformed_request_fails_alone(model, test_rows):
    bad = ScoringRequest(pa.table({"ad_feat0": pa.array(["x", "y"])}), True)
    answers, calls = score_together(model, [request(test_rows[:3]), bad,
                                            request(test_rows[3:6])], batch_rows=4096)
    assert isinstance(answers[1], RequestError) and answers[1].status == 422
    assert len(answers[0].probs) == 3 and len(answers[2].probs) == 3
    assert calls == 1
