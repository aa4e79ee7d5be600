"""How many chunks each embedding batch gets (review of issue 15, F3): enough batches for
two instances to share a big import, no flood of tiny ones for a small import."""

from __future__ import annotations

from pipeline.stages.embedding import TARGET_BATCHES, batch_size


def batches(missing: int, size: int) -> int:
    return -(-missing // size)


def test_a_big_import_is_cut_into_enough_batches_to_share():
    """Guards pitfall 7 (work that cannot spread): a 4 MB export (1,440 chunks) on calls of
    96 with EMBEDDING_BATCH_CHUNKS=500 was 3 batches (576, 576, 288), so two instances
    could at best split 2:1 (0.67x); now at least 5, and TARGET_BATCHES (16) once the
    import is big enough for batches of the floor (200 chunks, whole calls)."""
    assert batches(1440, batch_size(500, 96, 1440)) >= 5
    size = batch_size(500, 96, 8000)
    assert batches(8000, size) >= TARGET_BATCHES and size % 96 == 0


def test_two_instances_of_two_slots_each_get_equal_rounds_at_the_default_concurrency():
    """Guards pitfall 7 (work that cannot spread), review 15b G1: at the service's default
    of 4 requests in flight (calls of 384 chunks) an 8 MB import (7,468 chunks) was cut in
    10 batches of 768: 5 rounds on one instance's 2 slots, 3 on two instances' 4 (0.6x at
    best, 0.73 measured). Now every slot of two instances gets as many rounds as the next,
    and one instance needs twice as many."""
    size = batch_size(500, 384, 7468)
    n = batches(7468, size)
    assert size % 384 == 0 and n >= 16
    one, two = -(-n // 2), -(-n // 4)
    assert two / one <= 0.55


def test_configured_size_caps_and_small_imports_stay_few_batches():
    """Guards pitfall 7 as above: a huge import keeps EMBEDDING_BATCH_CHUNKS (rounded to
    whole calls) as the cap; a small import stays one or two batches of whole calls."""
    assert batch_size(500, 96, 100_000) == 576
    assert batches(150, batch_size(500, 96, 150)) == 1
    assert batches(300, batch_size(500, 96, 300)) <= 2
    assert batch_size(40, 8, 245) == 40  # a configured size below the floor is kept
    assert batch_size(500, 96, 0) == 288  # nothing missing: one whole-call batch at most
