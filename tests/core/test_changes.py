"""Process-local write counts, and which campaigns the latest writes touched."""

from core.changes import LocalChanges


def test_the_campaigns_touched_since_a_version_are_those_of_later_writes_of_the_organisation() -> (
    None
):
    writes = LocalChanges()
    writes.bump({("acme", "cmp_1")})
    seen = writes.version
    writes.bump({("acme", "cmp_2"), ("globex", "cmp_9")})
    writes.bump({("acme", "cmp_3"), ("acme", "cmp_2")})
    assert writes.touched_since(seen, "acme") == {"cmp_2", "cmp_3"}
    assert writes.touched_since(seen, "globex") == {"cmp_9"}
    assert writes.touched_since(0, "acme") == {"cmp_1", "cmp_2", "cmp_3"}
    assert writes.touched_since(writes.version, "acme") == set()


def test_a_write_that_may_touch_anything_makes_the_touched_campaigns_unknown() -> None:
    writes = LocalChanges()
    writes.bump({("acme", "cmp_1")})
    seen = writes.version
    writes.bump()  # a CSV load
    writes.bump({("acme", "cmp_2")})
    assert writes.touched_since(seen, "acme") is None
    assert writes.touched_since(writes.version - 1, "acme") == {"cmp_2"}


def test_writes_older_than_those_kept_make_the_touched_campaigns_unknown() -> None:
    writes = LocalChanges()
    for n in range(LocalChanges._KEPT + 5):
        writes.bump({("acme", f"cmp_{n}")})
    assert writes.touched_since(3, "acme") is None
    assert writes.touched_since(writes.version - 2, "acme") == {
        f"cmp_{LocalChanges._KEPT + 3}",
        f"cmp_{LocalChanges._KEPT + 4}",
    }
