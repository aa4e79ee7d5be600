"""The counter names have one owner (issue 10): pipeline.jobstore.COUNTERS."""

from __future__ import annotations


def test_parsing_sets_only_job_counters() -> None:
    """One owner for the counter names (issue 10): the parsing stage's counters are job
    counters, and each reads an existing field of the reader's statistics."""
    from pipeline.exports.models import ReadStats
    from pipeline.jobstore import COUNTERS
    from pipeline.stages.parsing import COUNTERS as PARSING
    from pipeline.stages.parsing import FROM_STATS

    assert set(PARSING) <= set(COUNTERS)
    stats = ReadStats()
    assert all(hasattr(stats, field) for field in FROM_STATS.values())
