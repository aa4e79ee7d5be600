"""How far behind delivery is: the age of the oldest event no receiver has acknowledged.

Read by /healthz, the sweeper (which warns past ``UNDELIVERED_WARN_SECONDS``) and `doctor`.
An event stays unacknowledged while nothing delivers it: pg_net missing on a hosted
project, a relay not running, a receiver URL that answers nothing. Jobs then sit in
`queued` without any error anywhere else, so this number is what makes it visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Past this, delivery is broken rather than slow: the relay retries within seconds, Svix's
# first retries come at 5 s and 5 min, and the sweeper re-emits every few minutes.
UNDELIVERED_WARN_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class OutboxLag:
    unacknowledged: int
    oldest_age_s: float | None  # None: nothing waiting

    @property
    def stuck(self) -> bool:
        return self.oldest_age_s is not None and self.oldest_age_s > UNDELIVERED_WARN_SECONDS

    def as_json(self) -> dict[str, object]:
        age = None if self.oldest_age_s is None else round(self.oldest_age_s, 1)
        return {
            "unacknowledged_events": self.unacknowledged,
            "oldest_unacknowledged_event_age_s": age,
        }


def outbox_lag(row: Sequence[Any] | dict[str, Any] | None) -> OutboxLag:
    """An OutboxLag from a row of query oldest_unacknowledged_event (tuple or dict row, as fetchone
    gives it: an aggregate, so never None in fact)."""
    assert row is not None
    if isinstance(row, dict):
        count, age = row["unacknowledged"], row["oldest_age_s"]
    else:
        count, age = row
    return OutboxLag(int(count or 0), None if age is None else float(age))
