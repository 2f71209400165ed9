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
from django.db.models.constants import OnConflict
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


def insert_sql(
    objs: Sequence[Model], *, ignore_conflicts: bool = False, using: str = "default"
) -> tuple[str, list]:
    """The INSERT that ``bulk_create(objs)`` would run (new objects of one model), as SQL and
    parameters; ``ignore_conflicts`` adds ON CONFLICT DO NOTHING."""
    model = type(objs[0])
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    query = InsertQuery(model, on_conflict=OnConflict.IGNORE if ignore_conflicts else None)
    query.insert_values(fields, list(objs))
    ((sql, params),) = query.get_compiler(using).as_sql()
    return sql, list(params)


def run_together(
    queryset: QuerySet,
    updates: Sequence[tuple[str, list]],
    *,
    returning: str = "",
    returning_params: Sequence = (),
    many: bool = False,
) -> Any:
    """Run writes (UPDATEs, INSERTs) as one statement; the last one's ``RETURNING
    returning`` row (or None when it matched nothing; with ``many``, all its rows; nothing
    without ``returning``). The others run whatever the last one matches."""
    *before, (last_sql, last_params) = updates
    ctes, params = [], []
    for number, (sql, cte_params) in enumerate(before):
        ctes.append(f"w{number} AS ({sql})")
        params.extend(cte_params)
    prefix = f"WITH {', '.join(ctes)} " if ctes else ""
    statement = f"{prefix}{last_sql}" + (f" RETURNING {returning}" if returning else "")
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(statement, [*params, *last_params, *returning_params])
        if not returning:
            return None
        return cursor.fetchall() if many else cursor.fetchone()


def insert_unless_present(objs: Sequence[Model], *, conflict_target: Sequence[str]) -> None:
    """``INSERT ... ON CONFLICT (conflict_target) DO NOTHING RETURNING id`` for new objects
    of one model, as one statement and without a savepoint (a failed INSERT inside a
    transaction would need one): each object inserted gets its id; one whose unique values
    are there already keeps ``pk`` None. PostgreSQL only (see ``combinable``)."""
    model = type(objs[0])
    using = objs[0]._state.db or "default"
    sql, params = insert_sql(objs, using=using)
    connection = connections[using]
    quote = connection.ops.quote_name
    columns = [model._meta.get_field(name).column for name in conflict_target]
    statement = (
        f"{sql} ON CONFLICT ({', '.join(quote(c) for c in columns)}) DO NOTHING"
        f" RETURNING {quote(model._meta.pk.column)}, {', '.join(quote(c) for c in columns)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    inserted = {tuple(row[1:]): row[0] for row in rows}
    attnames = [model._meta.get_field(name).attname for name in conflict_target]
    for obj in objs:
        pk = inserted.get(tuple(getattr(obj, attname) for attname in attnames))
        if pk is not None:
            obj.pk = pk
            obj._state.adding = False
            obj._state.db = using
