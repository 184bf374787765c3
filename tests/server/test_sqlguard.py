"""The parser layer of the guarded SQL endpoint (log_collector/server/query/sqlguard.py).

No database here: these tests show what the guard refuses, what it accepts and the text it
hands to the execution layer. tests/server/test_sqlexec.py runs the same corpora on real stores.
"""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sql_corpus import HOSTILE, LEGITIMATE

from log_collector.server.query.sqlguard import DIALECTS, SqlRefused, guard, wrap

HOSTILE_CASES = [(sql, dialect) for sql, dialects in HOSTILE for dialect in dialects]


def test_the_hostile_corpus_holds_at_least_60_statements():
    assert len(HOSTILE) >= 60


@pytest.mark.parametrize(("sql", "dialect"), HOSTILE_CASES)
def test_a_hostile_statement_is_refused_with_a_reason(sql, dialect):
    with pytest.raises(SqlRefused) as refused:
        guard(sql, dialect)
    assert refused.value.reason.strip()


@pytest.mark.parametrize(("sql", "dialect"), LEGITIMATE)
def test_a_legitimate_analytical_query_is_accepted_and_wrapped(sql, dialect):
    guarded = guard(sql, dialect, limit=50)
    assert guarded.sql.startswith("SELECT * FROM (")
    assert guarded.sql.endswith(") AS q LIMIT 51")


@pytest.mark.parametrize("dialect", ["postgres", "sqlite"])
def test_a_keyword_inside_a_string_literal_is_data_not_a_statement(dialect):
    guarded = guard("SELECT id FROM logs WHERE path = '/api/users/delete; DROP TABLE x'", dialect)
    assert "'/api/users/delete; DROP TABLE x'" in guarded.inner_sql


@pytest.mark.parametrize("dialect", ["postgres", "sqlite"])
def test_comments_are_dropped_from_the_text_that_runs(dialect):
    guarded = guard("SELECT /* DROP TABLE logs */ id -- ; DELETE FROM logs\nFROM logs", dialect)
    assert "DROP" not in guarded.sql and "DELETE" not in guarded.sql
    assert guarded.sql.startswith("SELECT * FROM (SELECT ")


def test_the_limit_wrap_fetches_one_row_more_than_the_limit():
    assert "SELECT * FROM (SELECT 1) AS q LIMIT 6" == wrap("SELECT 1", 5)


@pytest.mark.parametrize("limit", [0, -1, 100_001, 1.5, "10", True])
def test_a_limit_outside_1_to_100000_is_refused(limit):
    with pytest.raises(SqlRefused, match="limit"):
        guard("SELECT 1", "postgres", limit=limit)


def test_a_cte_is_a_relation_only_where_sql_makes_it_visible():
    """The main query and later CTEs see a CTE; its own non-recursive body does not, so a CTE
    named after a catalog cannot launder a read of that catalog."""
    guard("WITH a AS (SELECT 1 AS x), b AS (SELECT x FROM a) SELECT x FROM b", "postgres")
    with pytest.raises(SqlRefused, match="relation 'b'"):
        guard("WITH a AS (SELECT x FROM b), b AS (SELECT 1 AS x) SELECT x FROM a", "postgres")
    with pytest.raises(SqlRefused, match="relation 'pg_user'"):
        guard("WITH pg_user AS (SELECT * FROM pg_user) SELECT * FROM pg_user", "postgres")
    with pytest.raises(SqlRefused, match="relation 'x'"):
        guard("SELECT * FROM x WHERE EXISTS (WITH x AS (SELECT 1) SELECT 1 FROM x)", "sqlite")


def test_a_cte_may_not_shadow_the_logs_table():
    with pytest.raises(SqlRefused, match="shadow"):
        guard("WITH logs AS (SELECT 1 AS id) SELECT id FROM logs", "sqlite")


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT pg_sleep(1)", "function 'pg_sleep'"),
        ("SELECT 1; SELECT 2", "exactly one statement"),
        ("DELETE FROM logs", "only SELECT"),
        ("SELECT * FROM pg_shadow", "relation 'pg_shadow'"),
        ("SELECT * FROM logs FOR UPDATE", "'LOCK'"),
        ("SELECT * INTO x FROM logs", "INTO is not allowed"),
        ("SELECT 'a'::regclass", "type 'REGCLASS'"),
        ("SELECT * FROM public.logs", "schema-qualified"),
    ],
)
def test_the_reason_names_what_was_refused(sql, reason):
    with pytest.raises(SqlRefused) as refused:
        guard(sql, "postgres")
    assert reason in refused.value.reason


def test_an_unknown_dialect_is_a_programming_error_not_a_refusal():
    with pytest.raises(ValueError, match="dialect"):
        guard("SELECT 1", "mysql")


FRAGMENTS = [
    "SELECT",
    "*",
    "FROM",
    "logs",
    "logs_iso",
    "WHERE",
    "id",
    "=",
    "1",
    "'x'",
    ";",
    "--",
    "/*",
    "*/",
    "(",
    ")",
    ",",
    "WITH",
    "x",
    "AS",
    "UNION",
    "ALL",
    "DELETE",
    "INSERT",
    "INTO",
    "DROP",
    "pg_sleep(1)",
    "count(*)",
    "OVER",
    "ORDER BY",
    "GROUP BY",
    "LIMIT",
    "FOR UPDATE",
    "$$",
    '"',
    "'",
    "U&",
    "::",
    "->>",
    "json_extract(metadata, '$.a')",
    "RECURSIVE",
    "VALUES",
    "LATERAL",
    "JOIN",
    "ON",
    "CASE",
    "WHEN",
    "END",
    "NULL",
    "sqlite_master",
    "pragma_x()",
    "ATTACH",
    "\\",
    "\n",
    "E'",
    "[",
    "]",
    "?",
    "$1",
    ":name",
    "@x",
    "`",
    "CAST",
    "INTERVAL",
]


def _guard_outcome(sql: str, dialect: str) -> None:
    try:
        guard(sql, dialect, limit=10)
    except SqlRefused:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.sampled_from(["postgres", "sqlite"]))
def test_random_text_is_either_accepted_or_refused_never_a_crash(text, dialect):
    _guard_outcome(text, dialect)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=25),
    st.sampled_from(["postgres", "sqlite"]),
)
def test_random_sql_fragments_are_either_accepted_or_refused_never_a_crash(parts, dialect):
    _guard_outcome(" ".join(parts), dialect)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_statement_sqlglot_cannot_parse_is_refused_without_copying_it_to_the_log(dialect, caplog):
    """sqlglot warns when it falls back to a bare 'Command', quoting the statement: the guard
    refuses the statement and that warning never reaches the server's log."""
    with caplog.at_level(logging.DEBUG), pytest.raises(SqlRefused):
        guard("LOCK TABLE logs IN ACCESS EXCLUSIVE MODE", dialect)
    assert not [r for r in caplog.records if "LOCK TABLE" in r.getMessage()]
