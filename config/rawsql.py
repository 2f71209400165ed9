"""Several ORM writes sent to PostgreSQL as one statement, for the hot paths.

Each statement is a round trip and a parse on both sides; on the send and processing paths
they are most of the cost per comment (docs/performance.md). Writes that go together are
joined as data-modifying CTEs, which PostgreSQL runs as one atomic statement. Plain UPDATEs and
INSERTs are written from the fields (values prepared by each field as the ORM does, the text
made once per shape), since building and compiling a query cost more CPU than running it;
``update_sql`` keeps the ORM's compiler for filters beyond equality. Other databases (the
zero-config demo's SQLite) run the plain ORM calls.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import connections, router
from django.db.models import F, Model, QuerySet
from django.db.models.sql import UpdateQuery


def on_postgresql(model: type[Model]) -> bool:
    """Whether writes to this model's database can be joined into one statement (asked of the
    router: on the hot paths building a queryset to ask costs more than the answer)."""
    return connections[router.db_for_write(model)].vendor == "postgresql"


def update_sql(queryset: QuerySet, fields: dict[str, Any]) -> tuple[str, list]:
    """The UPDATE that ``queryset.update(**fields)`` would run, as SQL and parameters."""
    query = queryset.query.chain(UpdateQuery)
    query.add_update_values(fields)
    sql, params = query.get_compiler(queryset.db).as_sql()
    return sql, list(params)


@dataclass(frozen=True)
class Add:
    """For ``row_update_sql``: add ``amount`` to the column (``attempts = attempts + 1``)."""

    amount: int = 1


@cache
def _row_update_text(model: type[Model], where: tuple, fields: tuple, using: str) -> str:
    meta, quote = model._meta, connections[using].ops.quote_name
    sets = []
    for name, adds in fields:
        column = quote(meta.get_field(name).column)
        sets.append(f"{column} = {column} + %s" if adds else f"{column} = %s")
    conditions = []
    for name, is_null in where:
        column = quote(meta.get_field(name).column)
        conditions.append(f"{column} IS NULL" if is_null else f"{column} = %s")
    return (
        f"UPDATE {quote(meta.db_table)} SET {', '.join(sets)} "  # noqa: S608 - names only
        f"WHERE {' AND '.join(conditions)}"
    )


def row_update_sql(
    model: type[Model], where: dict[str, Any], fields: dict[str, Any], *, using: str = "default"
) -> tuple[str, list]:
    """``model.objects.filter(**where).update(**fields)`` as SQL and parameters, for filters on
    equal values (None: IS NULL) and plain values (or ``Add``), prepared for the database by
    each field as the ORM prepares them: no query is built or compiled, and the SQL text is
    made once per shape (the hot paths' UPDATEs; docs/performance.md)."""
    connection = connections[using]
    meta = model._meta
    text = _row_update_text(
        model,
        tuple((name, value is None) for name, value in where.items()),
        tuple((name, isinstance(value, Add)) for name, value in fields.items()),
        using,
    )
    params = [
        value.amount
        if isinstance(value, Add)
        else meta.get_field(name).get_db_prep_save(value, connection)
        for name, value in fields.items()
    ]
    params += [
        meta.get_field(name).get_db_prep_value(value, connection, prepared=False)
        for name, value in where.items()
        if value is not None
    ]
    return text, params


def update_rows(
    model: type[Model], where: dict[str, Any], fields: dict[str, Any], *, using: str = "default"
) -> int:
    """Run ``row_update_sql`` (PostgreSQL; elsewhere the ORM's update) and return how many
    rows it changed."""
    if connections[using].vendor != "postgresql":
        values = {
            name: F(name) + value.amount if isinstance(value, Add) else value
            for name, value in fields.items()
        }
        return model._default_manager.using(using).filter(**where).update(**values)
    with connections[using].cursor() as cursor:
        cursor.execute(*row_update_sql(model, where, fields, using=using))
        return cursor.rowcount


@cache
def _insert_text(model: type[Model], rows: int, ignore_conflicts: bool, using: str) -> str:
    meta, quote = model._meta, connections[using].ops.quote_name
    columns = [quote(f.column) for f in meta.concrete_fields if not f.primary_key]
    row = f"({', '.join(['%s'] * len(columns))})"
    return (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(columns)}) "  # noqa: S608 - names only
        f"VALUES {', '.join([row] * rows)}"
        + (" ON CONFLICT DO NOTHING" if ignore_conflicts else "")
    )


def insert_sql(
    objs: Sequence[Model], *, ignore_conflicts: bool = False, using: str = "default"
) -> tuple[str, list]:
    """The INSERT that ``bulk_create(objs)`` would run (new objects of one model), as SQL and
    parameters; ``ignore_conflicts`` adds ON CONFLICT DO NOTHING. Values are
    prepared by each field as the ORM's INSERT does (``pre_save`` fills auto_now_add), and
    the SQL text is made once per model and number of rows."""
    model = type(objs[0])
    connection = connections[using]
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    params = [
        field.get_db_prep_save(field.pre_save(obj, True), connection)
        for obj in objs
        for field in fields
    ]
    return _insert_text(model, len(objs), ignore_conflicts, using), params


def run_together(
    queryset: QuerySet | str,
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
    using = queryset if isinstance(queryset, str) else queryset.db
    with connections[using].cursor() as cursor:
        cursor.execute(statement, [*params, *last_params, *returning_params])
        if not returning:
            return None
        return cursor.fetchall() if many else cursor.fetchone()


def insert_unless_present(objs: Sequence[Model], *, conflict_target: Sequence[str]) -> None:
    """``INSERT ... ON CONFLICT (conflict_target) DO NOTHING RETURNING id`` for new objects
    of one model, as one statement and without a savepoint (a failed INSERT inside a
    transaction would need one): each object inserted gets its id; one whose unique values
    are there already keeps ``pk`` None. PostgreSQL only (see ``on_postgresql``)."""
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
