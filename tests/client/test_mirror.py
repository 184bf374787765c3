"""The spool's mirror: an in-memory copy of a small records table, in id order."""

from log_collector.client.spool._mirror import Mirror


def rows(first: int, last: int) -> list[tuple[int, str]]:
    return [(i, f"body-{i}") for i in range(first, last + 1)]


def test_an_active_mirror_follows_appends_and_gives_the_oldest_rows_first():
    mirror = Mirror(1_000, active=True)
    mirror.add(rows(1, 3), 30)
    mirror.add(rows(4, 5), 20)

    assert rows(1, 2) == mirror.head(2)
    assert rows(1, 5) == mirror.head(100)
    assert mirror.active


def test_an_inactive_mirror_ignores_appends_until_restarted():
    mirror = Mirror(1_000, active=False)
    mirror.add(rows(1, 3), 30)
    assert not mirror.active

    mirror.restart()
    mirror.add(rows(4, 4), 10)

    assert mirror.active
    assert rows(4, 4) == mirror.head(10)


def test_crossing_the_size_limit_stops_the_mirror_and_empties_it():
    mirror = Mirror(50, active=True)
    mirror.add(rows(1, 4), 40)
    mirror.add(rows(5, 6), 20)  # 60 bytes > 50: a backlog, reads go to SQLite

    assert not mirror.active
    assert [] == mirror.head(10)


def test_removing_the_oldest_rows_keeps_the_rest_in_order():
    mirror = Mirror(1_000, active=True)
    mirror.add(rows(1, 5), 50)

    mirror.remove_oldest(1, 3, 3, 30)

    assert mirror.active
    assert rows(4, 5) == mirror.head(10)
    mirror.add(rows(6, 100), 960)  # 20 + 960 <= 1,000 only if the 30 removed were given back
    assert mirror.active


def test_removing_rows_that_are_not_the_oldest_stops_the_mirror():
    mirror = Mirror(1_000, active=True)
    mirror.add(rows(1, 5), 50)

    mirror.remove_oldest(2, 3, 2, 20)  # row 1 is still there: not the usual ack

    assert not mirror.active
    assert [] == mirror.head(10)


def test_removing_more_rows_than_the_mirror_holds_stops_it():
    mirror = Mirror(1_000, active=True)
    mirror.add(rows(1, 2), 20)

    mirror.remove_oldest(1, 3, 3, 30)

    assert not mirror.active
