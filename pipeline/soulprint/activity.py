"""Volume, time span and rhythm (hour of day, weekday, month) of the person's messages, in UTC."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Timestamps outside this window are corrupt; counting them would invent a 50-year span.
_MIN_TS = datetime(2015, 1, 1, tzinfo=UTC).timestamp()
_MAX_TS = datetime(2100, 1, 1, tzinfo=UTC).timestamp()
MAX_MONTHS = 1200  # a hundred years: the month counter can never grow past this


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


class Activity:
    """Counts a person's messages over time; state is fixed-size (24 + 7 + months)."""

    def __init__(self) -> None:
        self.by_hour = [0] * 24
        self.by_weekday = [0] * 7
        self.by_month: Counter[str] = Counter()
        self.first: float | None = None
        self.last: float | None = None
        self.untimed = 0
        # One byte per possible day (about 31k): exact active-day count at a fixed size.
        self._days = bytearray(int((_MAX_TS - _MIN_TS) // 86400) + 1)

    def add(self, ts: float | None) -> None:
        """Record one user message written at `ts` (epoch seconds, or None)."""
        if ts is None or not _MIN_TS <= ts < _MAX_TS:
            self.untimed += 1
            return
        when = datetime.fromtimestamp(ts, UTC)
        self.by_hour[when.hour] += 1
        self.by_weekday[when.weekday()] += 1
        month = when.strftime("%Y-%m")
        if month in self.by_month or len(self.by_month) < MAX_MONTHS:
            self.by_month[month] += 1
        self._days[int((ts - _MIN_TS) // 86400)] = 1
        self.first = ts if self.first is None else min(self.first, ts)
        self.last = ts if self.last is None else max(self.last, ts)

    def to_state(self) -> dict[str, Any]:
        return {
            "by_hour": self.by_hour,
            "by_weekday": self.by_weekday,
            "by_month": dict(self.by_month),
            "first": self.first,
            "last": self.last,
            "untimed": self.untimed,
            "days": [i for i, on in enumerate(self._days) if on],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Activity:
        act = cls()
        act.by_hour, act.by_weekday = list(state["by_hour"]), list(state["by_weekday"])
        act.by_month = Counter(state["by_month"])
        act.first, act.last, act.untimed = state["first"], state["last"], state["untimed"]
        for day in state["days"]:
            act._days[day] = 1
        return act

    def summary(self) -> dict[str, Any]:
        timed = sum(self.by_hour)
        peak_hour = max(range(24), key=lambda h: (self.by_hour[h], -h)) if timed else None
        ranked_days = sorted(range(7), key=lambda d: (-self.by_weekday[d], d))
        span_days = int((self.last - self.first) // 86400) + 1 if self.first and self.last else 0
        months = self.by_month
        busiest = min(months, key=lambda m: (-months[m], m)) if months else None
        return {
            "timezone": "UTC",
            "first_message_at": iso(self.first),
            "last_message_at": iso(self.last),
            "span_days": span_days,
            "active_days": self._days.count(1),
            "untimed_messages": self.untimed,
            "by_hour": list(self.by_hour),
            "by_weekday": dict(zip(WEEKDAYS, self.by_weekday, strict=True)),
            "by_month": dict(sorted(self.by_month.items())),
            "peak_hour": peak_hour,
            "busiest_weekday": WEEKDAYS[ranked_days[0]] if timed else None,
            "quietest_weekday": WEEKDAYS[ranked_days[-1]] if timed else None,
            "busiest_month": busiest,
        }
