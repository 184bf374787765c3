"""The parser layer of ``POST /api/sql``: one read-only SELECT over the log tables, or a refusal.

The guarded SQL endpoint has three layers, each tested on its own:

1. this module parses the text with sqlglot in the store's dialect and accepts it only when
   every node of the tree is of a known-safe type (an allowlist of expression types, not a
   denylist of keywords), every relation is an allowlisted table or view or a CTE of the query
   itself, and every function is allowlisted. It then re-generates the SQL from the validated
   tree, so the database runs exactly what was checked (comments dropped, identifiers quoted),
   and wraps it as ``SELECT * FROM (<query>) AS q LIMIT <limit + 1>``;
2. ``sqlexec`` runs that text in a read-only transaction with a statement timeout, as a role
   (PostgreSQL) or under an authorizer (SQLite) that can only read the allowed relations;
3. ``sqlexec`` fetches at most ``limit + 1`` rows and reports ``truncated``.

The approach follows Datasette, which lets anyone run SQL against a read-only database and relies
on SQLite's authorizer and a time limit rather than on keyword filters:
https://docs.datasette.io/en/stable/sql_queries.html and
https://www.sqlite.org/c3ref/set_authorizer.html

The module is one piece past the usual ~400 lines because most of it is the allowlists
themselves (node types, functions per dialect, cast targets): the checks read against them.
Every function here is pure: no database is touched. Any failure to parse or validate raises
:class:`SqlRefused` naming what was refused; nothing else escapes for user input.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers


class _NoCommandFallbackWarnings(logging.Filter):
    """Drops sqlglot's warning that it parsed a statement as a bare 'Command': the guard refuses
    every Command, and the warning would copy the client's SQL into the server's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a 'Command'" not in record.getMessage()


logging.getLogger("sqlglot").addFilter(_NoCommandFallbackWarnings())

DIALECTS = ("postgres", "sqlite")
DEFAULT_LIMIT = 1000
MAX_LIMIT = 100_000
# Longer text is refused before parsing: sqlglot's parser is recursive and a pathological input
# could otherwise use a lot of time or stack before failing.
MAX_SQL_CHARS = 100_000

# The relations a query may read. On SQLite, ``logs_iso`` is the view of migrations/sqlite/0002.
ALLOWED_RELATIONS: dict[str, frozenset[str]] = {
    "postgres": frozenset({"logs"}),
    "sqlite": frozenset({"logs", "logs_iso"}),
}

# Set-returning functions allowed in FROM, by the sqlglot node they parse into.
_TABLE_FUNCTIONS: dict[str, tuple[type[exp.Expression], ...]] = {
    "postgres": (exp.ExplodingGenerateSeries, exp.GenerateSeries),
    "sqlite": (),
}

# Structural node types: queries, clauses, names, literals, operators.
_STRUCTURE: tuple[type[exp.Expression], ...] = (
    exp.Select,
    exp.Union,
    exp.Intersect,
    exp.Except,
    exp.Subquery,
    exp.With,
    exp.CTE,
    exp.From,
    exp.Join,
    exp.Lateral,
    exp.Where,
    exp.Group,
    exp.Having,
    exp.Order,
    exp.Ordered,
    exp.Limit,
    exp.Offset,
    exp.Fetch,
    exp.Distinct,
    exp.Window,
    exp.WindowSpec,
    exp.Filter,
    exp.WithinGroup,
    exp.Values,
    exp.Tuple,
    exp.Table,
    exp.TableAlias,
    exp.Alias,
    exp.Column,
    exp.Identifier,
    exp.Star,
    exp.Literal,
    exp.Null,
    exp.Boolean,
    exp.Paren,
    exp.Case,
    exp.If,
    exp.Cast,
    exp.DataType,
    exp.Interval,
    exp.Var,
    exp.Neg,
    exp.Not,
    exp.And,
    exp.Or,
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.NullSafeEQ,
    exp.NullSafeNEQ,
    exp.Is,
    exp.In,
    exp.Between,
    exp.Like,
    exp.ILike,
    exp.Glob,
    exp.Escape,
    exp.Exists,
    exp.Any,
    exp.All,
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Div,
    exp.IntDiv,
    exp.Mod,
    exp.DPipe,
    exp.JSONPath,
    exp.JSONPathKey,
    exp.JSONPathRoot,
    exp.JSONPathSubscript,
    exp.Bracket,
)

# Typed functions sqlglot produces for the aggregate, window, date/time, string, math and JSON
# functions both stores share.
_FUNCTIONS: tuple[type[exp.Expression], ...] = (
    exp.Count,
    exp.Sum,
    exp.Avg,
    exp.Min,
    exp.Max,
    exp.Stddev,
    exp.StddevPop,
    exp.StddevSamp,
    exp.Variance,
    exp.VariancePop,
    exp.PercentileCont,
    exp.PercentileDisc,
    exp.ArrayAgg,
    exp.GroupConcat,
    exp.RowNumber,
    exp.Rank,
    exp.DenseRank,
    exp.PercentRank,
    exp.CumeDist,
    exp.Ntile,
    exp.Lag,
    exp.Lead,
    exp.FirstValue,
    exp.LastValue,
    exp.NthValue,
    exp.Coalesce,
    exp.Nullif,
    exp.Greatest,
    exp.Least,
    exp.Lower,
    exp.Upper,
    exp.Length,
    exp.Substring,
    exp.Trim,
    exp.Concat,
    exp.ConcatWs,
    exp.StrPosition,
    exp.SplitPart,
    exp.Left,
    exp.Right,
    exp.Pad,
    exp.Initcap,
    exp.Typeof,
    exp.Abs,
    exp.Round,
    exp.Ceil,
    exp.Floor,
    exp.Sqrt,
    exp.Ln,
    exp.Log,
    exp.Exp,
    exp.Pow,
    exp.Sign,
    exp.JSONExtract,
    exp.JSONExtractScalar,
    exp.JSONBExtract,
    exp.JSONBExtractScalar,
    exp.JSONType,
    exp.TimestampTrunc,
    exp.DateTrunc,
    exp.CurrentTimestamp,
    exp.CurrentDate,
    exp.Extract,
    exp.TimeToStr,
    exp.StrToTime,
    exp.UnixToTime,
    exp.TimeToUnix,
)

# Functions sqlglot leaves as ``Anonymous`` (by lower-case name), per dialect. A name missing
# here is refused, so an unknown function (pg_sleep, load_extension, ...) never runs.
ALLOWED_ANONYMOUS_FUNCTIONS: dict[str, frozenset[str]] = {
    "postgres": frozenset(
        {
            "age",
            "btrim",
            "date_bin",
            "json_array_length",
            "json_typeof",
            "jsonb_array_length",
            "jsonb_typeof",
            "ltrim",
            "make_interval",
            "md5",
            "replace",
            "rtrim",
            "strpos",
            "to_char",
            "to_timestamp",
            "width_bucket",
        }
    ),
    "sqlite": frozenset(
        {
            "char",
            "date",
            "datetime",
            "iif",
            "instr",
            "json_array_length",
            "json_valid",
            "julianday",
            "ltrim",
            "printf",
            "replace",
            "rtrim",
            "strftime",
            "substr",
            "time",
            "total",
            "unicode",
            "unixepoch",
        }
    ),
}

# Cast targets: plain value types only (no regclass/regproc, whose input functions look up
# catalog objects).
_DATA_TYPES = frozenset(
    {
        exp.DataType.Type.BIGINT,
        exp.DataType.Type.BOOLEAN,
        exp.DataType.Type.CHAR,
        exp.DataType.Type.DATE,
        exp.DataType.Type.DECIMAL,
        exp.DataType.Type.DOUBLE,
        exp.DataType.Type.FLOAT,
        exp.DataType.Type.INT,
        exp.DataType.Type.INTERVAL,
        exp.DataType.Type.JSON,
        exp.DataType.Type.JSONB,
        exp.DataType.Type.SMALLINT,
        exp.DataType.Type.TEXT,
        exp.DataType.Type.TIME,
        exp.DataType.Type.TIMESTAMP,
        exp.DataType.Type.TIMESTAMPTZ,
        exp.DataType.Type.UUID,
        exp.DataType.Type.VARCHAR,
    }
)

# A ``Var`` is a bare keyword sqlglot did not type; it is accepted only as the unit argument of
# these nodes (INTERVAL '1' HOUR, EXTRACT(EPOCH FROM ...), date_trunc's unit).
_VAR_PARENTS = (exp.Interval, exp.Extract, exp.TimestampTrunc, exp.DateTrunc, exp.JSONPathKey)

_TOP_LEVEL = (exp.Select, exp.Union, exp.Intersect, exp.Except)


class SqlError(Exception):
    """Base of every error the guarded SQL layers raise for a user's statement."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class SqlRefused(SqlError):
    """The statement is not a single read-only SELECT over the allowed relations and functions."""


@dataclass(frozen=True)
class GuardedQuery:
    """A validated statement: ``sql`` is the wrapped text to run, fetching ``limit + 1`` rows."""

    sql: str
    inner_sql: str
    dialect: str
    limit: int


def guard(sql: str, dialect: str, limit: int = DEFAULT_LIMIT) -> GuardedQuery:
    """Parse, validate and wrap ``sql``; raise :class:`SqlRefused` with the reason otherwise."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise SqlRefused(f"limit must be an integer from 1 to {MAX_LIMIT}")
    tree = validate(sql, dialect)
    try:
        # PostgreSQL: every identifier quoted (case already folded), so a name is only ever a
        # column, never a keyword like session_user. SQLite: quoted only where needed, because
        # SQLite reads a double-quoted name that matches no column as a string literal
        # (https://www.sqlite.org/quirks.html#dblquote), which would hide a misspelt column.
        inner = tree.sql(dialect=dialect, comments=False, identify=dialect == "postgres")
    except Exception as exc:  # noqa: BLE001 - a generator bug must still read as a refusal
        raise SqlRefused(f"could not re-generate the statement: {_first_line(exc)}") from None
    return GuardedQuery(sql=wrap(inner, limit), inner_sql=inner, dialect=dialect, limit=limit)


def wrap(inner_sql: str, limit: int) -> str:
    """``SELECT * FROM (<inner_sql>) AS q LIMIT <limit + 1>``: one extra row shows truncation."""
    return f"SELECT * FROM ({inner_sql}) AS q LIMIT {int(limit) + 1}"


def validate(sql: str, dialect: str) -> exp.Expression:
    """The parsed tree of ``sql`` with unquoted names folded to the dialect's case."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}, expected one of {DIALECTS}")
    if not isinstance(sql, str):
        raise SqlRefused("the statement must be text")
    if len(sql) > MAX_SQL_CHARS:
        raise SqlRefused(f"the statement is longer than {MAX_SQL_CHARS} characters")
    if "\x00" in sql:
        raise SqlRefused("the statement contains a NUL character")
    try:
        trees = [t for t in sqlglot.parse(sql, read=dialect) if t is not None]
    except SqlglotError as exc:
        raise SqlRefused(f"not valid SQL: {_first_line(exc)}") from None
    except RecursionError:
        raise SqlRefused("the statement is nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - a parser bug must still read as a refusal
        raise SqlRefused(f"could not parse the statement: {_first_line(exc)}") from None
    if len(trees) != 1:
        raise SqlRefused(f"exactly one statement is allowed, found {len(trees)}")
    tree = trees[0]
    if not isinstance(tree, _TOP_LEVEL):
        raise SqlRefused(f"only SELECT is allowed, found {_describe(tree)}")
    try:
        tree = normalize_identifiers(tree, dialect=dialect)
        for node in tree.walk():
            _check_node(node, dialect)
    except RecursionError:
        raise SqlRefused("the statement is nested too deeply") from None
    return tree


def _check_node(node: exp.Expression, dialect: str) -> None:
    if isinstance(node, exp.Anonymous):
        _check_anonymous(node, dialect)
    elif isinstance(node, exp.Table):
        _check_table(node, dialect)
    elif isinstance(node, exp.CTE):
        name = node.alias_or_name.lower()
        if name in ALLOWED_RELATIONS[dialect]:
            raise SqlRefused(f"a CTE may not shadow the relation {name!r}")
    elif isinstance(node, exp.Column):
        if node.args.get("db") is not None or node.args.get("catalog") is not None:
            raise SqlRefused(f"schema-qualified column {node.sql(dialect=dialect)!r}")
    elif isinstance(node, exp.DataType):
        if node.this not in _DATA_TYPES:
            raise SqlRefused(f"type {node.sql(dialect=dialect)!r} is not allowed")
    elif isinstance(node, exp.Var):
        if not isinstance(node.parent, _VAR_PARENTS):
            raise SqlRefused(f"bare keyword {node.name!r} is not allowed here")
    elif isinstance(node, _TABLE_FUNCTIONS[dialect]):
        if not isinstance(node.parent, exp.Table):
            raise SqlRefused(f"{_describe(node)} is allowed only in FROM")
    elif not isinstance(node, _STRUCTURE + _FUNCTIONS):
        raise SqlRefused(f"{_describe(node)} is not allowed")
    if isinstance(node, exp.Select) and node.args.get("into") is not None:
        raise SqlRefused("SELECT ... INTO is not allowed")


def _check_anonymous(node: exp.Anonymous, dialect: str) -> None:
    name_node = node.this
    if isinstance(name_node, exp.Identifier) and name_node.quoted:
        raise SqlRefused(f"quoted function name {name_node.name!r} is not allowed")
    name = node.name.lower()
    if name not in ALLOWED_ANONYMOUS_FUNCTIONS[dialect]:
        raise SqlRefused(f"function {name!r} is not allowed")
    if isinstance(node.parent, exp.Dot):
        raise SqlRefused(f"schema-qualified function {name!r} is not allowed")


def _check_table(node: exp.Table, dialect: str) -> None:
    if node.args.get("db") is not None or node.args.get("catalog") is not None:
        raise SqlRefused(f"schema-qualified relation {node.sql(dialect=dialect)!r} is not allowed")
    target = node.this
    if not isinstance(target, exp.Identifier):
        if isinstance(target, _TABLE_FUNCTIONS[dialect]):
            return
        raise SqlRefused(f"table function {_describe(target)} is not allowed")
    name = target.name
    if name in ALLOWED_RELATIONS[dialect] or _names_visible_cte(node, name):
        return
    raise SqlRefused(f"relation {name!r} is not allowed")


def _names_visible_cte(table: exp.Table, name: str) -> bool:
    """Whether ``name`` at ``table`` certainly refers to a CTE of an enclosing WITH.

    A CTE body sees only the CTEs before it (and itself under WITH RECURSIVE); the query that
    owns the WITH sees all of them. Anything else is resolved as a real relation, so a CTE named
    like a system catalog cannot make a reference to that catalog pass.
    https://www.postgresql.org/docs/15/queries-with.html
    """
    child: exp.Expression = table
    node = table.parent
    while node is not None:
        if isinstance(node, exp.With) and isinstance(child, exp.CTE):
            names = _cte_names(node)
            index = next(i for i, cte in enumerate(node.expressions) if cte is child)
            visible = names[: index + 1] if node.args.get("recursive") else names[:index]
            if name in visible:
                return True
        elif isinstance(node, exp.Query):
            with_ = node.args.get("with_")
            if with_ is not None and with_ is not child and name in _cte_names(with_):
                return True
        child, node = node, node.parent
    return False


def _cte_names(with_: exp.Expression) -> list[str]:
    return [cte.alias_or_name for cte in with_.expressions]


def _describe(node: exp.Expression | None) -> str:
    if node is None:
        return "nothing"
    if isinstance(node, exp.Command):
        return f"command {str(node.this).upper()!r}"
    if isinstance(node, exp.Func):
        return f"function {node.sql_name().lower()!r}"
    return f"{node.key.upper()!r}"


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
