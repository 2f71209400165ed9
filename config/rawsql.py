"""Several ORM writes sent to PostgreSQL as one statement, for the hot paths.

Each statement is a round trip and a parse on both sides; on the send and processing paths
they are most of the cost per comment (docs/performance.md). The SQL is Django's own (the
ORM compiles each UPDATE), only joined as data-modifying CTEs, which PostgreSQL runs as one
atomic statement. Other databases (the zero-config demo's SQLite) run the plain ORM calls.
"""

from collections.abc import Sequence
from typing import Any

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.sql import InsertQuery, UpdateQuery


def combinable(queryset: QuerySet) -> bool:
    """Whether writes on this queryset's database can be joined into one statement."""
    return connections[queryset.db].vendor == "postgresql"


def update_sql(queryset: QuerySet, fields: dict[str, Any]) -> tuple[str, list]:
    """The UPDATE that ``queryset.update(**fields)`` would run, as SQL and parameters."""
    query = queryset.query.chain(UpdateQuery)
    query.add_update_values(fields)
    sql, params = query.get_compiler(queryset.db).as_sql()
    return sql, list(params)


def run_together(
    queryset: QuerySet,
    updates: Sequence[tuple[str, list]],
    *,
    returning: str,
    returning_params: Sequence = (),
    many: bool = False,
) -> Any:
    """Run UPDATEs as one statement; the last one's ``RETURNING returning`` row (or None
    when it matched nothing; with ``many``, all its rows). The others run whatever the last
    one matches."""
    *before, (last_sql, last_params) = updates
    ctes, params = [], []
    for number, (sql, cte_params) in enumerate(before):
        ctes.append(f"w{number} AS ({sql})")
        params.extend(cte_params)
    prefix = f"WITH {', '.join(ctes)} " if ctes else ""
    statement = f"{prefix}{last_sql} RETURNING {returning}"
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(statement, [*params, *last_params, *returning_params])
        return cursor.fetchall() if many else cursor.fetchone()


def insert_unless_present(obj: Model, *, conflict_target: Sequence[str]) -> int | None:
    """``INSERT ... ON CONFLICT (conflict_target) DO NOTHING RETURNING id`` for one new
    object: its id, or None when a row with the same unique values is there already. One
    statement and no savepoint (a failed INSERT inside a transaction would need one).
    PostgreSQL only (see ``combinable``)."""
    model = type(obj)
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    query = InsertQuery(model)
    query.insert_values(fields, [obj])
    ((sql, params),) = query.get_compiler(obj._state.db or "default").as_sql()
    connection = connections[obj._state.db or "default"]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(model._meta.get_field(name).column) for name in conflict_target)
    pk_column = quote(model._meta.pk.column)
    statement = f"{sql} ON CONFLICT ({columns}) DO NOTHING RETURNING {pk_column}"
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        row = cursor.fetchone()
    if row is None:
        return None
    obj.pk = row[0]
    obj._state.adding = False
    obj._state.db = connection.alias
    return obj.pk
