"""Training "as of" a time T: only the labels known at T.

A label's credit becomes known when its conversion happens (the known-at column of every label,
`Schema.known_at_columns`, cached as the `known_at` array). At T a click whose conversion
arrives later is a negative: its weight is 0, as a platform retraining at T would see it.

The cut is exact for the binarised labels (`weight > 0` at T) because a known-at time is the
first conversion that gives the click credit under the label's rule; a click credited by several
conversions keeps its whole matured weight once the first is known (`--label-mode weighted`
then sees later conversions' credit early).

Light: no numpy at import, so the run config's option parsing stays light.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from malt.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np


def parse_as_of(text: str | float, key: str = "--as-of") -> float:
    """Unix seconds of an as-of time given as seconds (`1700000000`) or an ISO-8601 date or
    date-time (`2026-12-07`, `2026-12-07T06:00`; UTC unless it names its offset)."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(str(text))
        except ValueError:
            raise ConfigError(f"{key} = {text!r}: expected unix seconds or an ISO-8601 date-time "
                              "such as 2026-12-07T06:00") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        seconds = moment.timestamp()
    if not math.isfinite(seconds):
        raise ConfigError(f"{key} = {text!r}: expected a finite time")
    return seconds


def labels_as_of(weights, known_at, as_of: float):
    """The weights [N, V] as known at `as_of`: 0 where a label's known-at time [N, V] (NaN:
    never credited) is later than `as_of` or missing, the weight otherwise. numpy arrays in,
    float32 [N, V] out."""
    import numpy as np

    known = np.asarray(known_at) <= as_of  # NaN compares False: never credited
    return np.where(known, weights, 0).astype(np.float32, copy=False)


def known_positives(days, as_of: float) -> tuple[np.ndarray, np.ndarray]:
    """(positives known at `as_of`, positives) per label, int64 [V] each, over `days`
    (`cache.Day`, each holding its known-at array)."""
    import numpy as np

    check_days_as_of(days, as_of)
    known = total = 0
    for day in days:
        arrays = day.arrays()
        positive = arrays["weights"] > 0
        known = known + np.count_nonzero(positive & (arrays["known_at"] <= as_of), axis=0)
        total = total + np.count_nonzero(positive, axis=0)
    return np.asarray(known, dtype=np.int64), np.asarray(total, dtype=np.int64)


def check_days_as_of(days, as_of: float | None) -> None:
    """Raise `ConfigError` when an as-of cut is asked of days (`cache.Day`) whose files hold no
    known-at columns."""
    if as_of is None:
        return
    lacking = [day.name for day in days if not day.stats.known_at]
    if lacking:
        raise ConfigError(f"--as-of needs the labels' known-at columns (<label>_known_at, or "
                          f"the schema's known_at), which the days {lacking} do not hold; "
                          "`malt simulate` and `malt attribute` write them")


def check_days_delay_correction(days, correction: str, as_of: float | None = None) -> None:
    """Raise `ConfigError` when a delayed-feedback correction is asked of days (`cache.Day`)
    whose files hold no known-at columns: without them no label is known to be delayed; and
    when `dfm` is asked without an as-of time or of days without click times (it reads each
    row's elapsed time at T)."""
    if correction == "none":
        return
    lacking = [day.name for day in days if not day.stats.known_at]
    if lacking:
        raise ConfigError(f"task.delay_correction = '{correction}' needs the labels' known-at "
                          f"columns (<label>_known_at, or the schema's known_at), which the "
                          f"days {lacking} do not hold; `malt simulate` and `malt attribute` "
                          "write them")
    if correction != "dfm":
        return
    if as_of is None:
        raise ConfigError("task.delay_correction = 'dfm' fits each row's elapsed time at the "
                          "as-of time: give data.as_of (--as-of T)")
    lacking = [day.name for day in days if not day.stats.click_time]
    if lacking:
        raise ConfigError(f"task.delay_correction = 'dfm' needs the click times (the column "
                          f"the schema's click_time names, `click_time` by default), which the "
                          f"days {lacking} do not hold; `malt simulate` writes them")
