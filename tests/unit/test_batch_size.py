"""How many chunks each embedding batch gets (review of issue 15, F3): enough batches for
two instances to share a big import, no flood of tiny ones for a small import."""

from __future__ import annotations

from pipeline.stages.embedding import TARGET_BATCHES, batch_size


def batches(missing: int, size: int) -> int:
    return -(-missing // size)


def test_a_big_import_is_cut_into_enough_batches_to_share():
    """Guards pitfall 7 (work that cannot spread): a 4 MB export (1,440 chunks) on calls of
    96 with EMBEDDING_BATCH_CHUNKS=500 was 3 batches (576, 576, 288), so two instances
    could at best split 2:1 (0.67x); now at least 5, and 8 once the import is big enough."""
    assert batches(1440, batch_size(500, 96, 1440)) >= 5
    size = batch_size(500, 96, 4000)
    assert batches(4000, size) >= TARGET_BATCHES and size % 96 == 0


def test_configured_size_caps_and_small_imports_stay_few_batches():
    """Guards pitfall 7 as above: a huge import keeps EMBEDDING_BATCH_CHUNKS (rounded to
    whole calls) as the cap; a small import stays one or two batches of whole calls."""
    assert batch_size(500, 96, 100_000) == 576
    assert batches(150, batch_size(500, 96, 150)) == 1
    assert batches(300, batch_size(500, 96, 300)) <= 2
    assert batch_size(40, 8, 245) == 40  # a configured size below the floor is kept
    assert batch_size(500, 96, 0) == 288  # nothing missing: one whole-call batch at most
