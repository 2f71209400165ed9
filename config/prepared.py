"""Hot-path statements compiled by the ORM once per process, then only bound to new values.

Building and compiling a queryset (filters, joins, select_related, annotations) costs more CPU
than PostgreSQL spends running the statement: on the path of a matched comment it was the
largest share of the worker's CPU (`bench/profile_comment.py`). The statements below have a
fixed shape, so each is built once from placeholder values; a call then puts its own values
into the parameter list and runs the same SQL. The SQL is still Django's own, and a test
(tests/test_prepared.py) checks for every statement that binding gives exactly what building
the queryset with the real values would.

A builder must use each argument as a value only (``filter(pk=delivery_id)``, not
``delivery_id + 1``): a value computed from an argument would be compiled in as a constant.
An argument that is a list is compiled for its length (one statement per length seen); an
argument of kind ``SHAPE`` (a LIMIT, say, which Django writes into the SQL text) is compiled in,
one statement per value seen.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators

SHAPE = object()  # the kind of an argument compiled into the SQL text (see above)

_REGISTRY: list[Prepared] = []
_serial = itertools.count(1)


def _placeholder(kind: type, serial: int) -> Any:
    """A value of `kind` no real call passes, recognisable in the compiled parameters."""
    if kind is int:
        return -(7 * 10**15) - serial
    if kind is str:
        return f"__prepared_placeholder_{serial}__"
    if kind is datetime:
        return datetime(1901, 1, 1, tzinfo=UTC) + timedelta(microseconds=serial)
    raise TypeError(f"no placeholder for {kind!r}")


def _compiles_once(using: str) -> bool:
    # Elsewhere (the demo's SQLite) values are adapted before they reach the parameters
    # (datetimes become text), so placeholders could not be found: built every time there.
    return connections[using].vendor == "postgresql"


class Prepared:
    """Base: compiles `build` per (database, list lengths) and binds values by position."""

    def __init__(self, build: Callable[..., Any], **kinds: Any) -> None:
        self.build = build
        self.kinds = kinds
        self.name = f"{build.__module__}.{build.__qualname__}"
        self._compiled: dict[tuple, Any] = {}
        self._lock = threading.Lock()
        _REGISTRY.append(self)

    def _key(self, using: str, values: dict[str, Any]) -> tuple:
        def part(name: str, kind: Any) -> Any:
            if kind is SHAPE:
                return values[name]
            return len(values[name]) if isinstance(values[name], list) else -1

        return (using, *(part(name, kind) for name, kind in self.kinds.items()))

    def _placeholders(self, values: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for name, kind in self.kinds.items():
            value = values[name]
            if kind is SHAPE:
                continue
            if isinstance(value, list):
                out[name] = [_placeholder(kind, next(_serial)) for _ in value]
            else:
                out[name] = _placeholder(kind, next(_serial))
        return out

    @staticmethod
    def _slots(params: list, placeholders: dict[str, Any]) -> list[tuple[int, str, int | None]]:
        """(position in params, argument, index in a list argument) for each placeholder."""
        where: dict[Any, tuple[str, int | None]] = {}
        for name, value in placeholders.items():
            if isinstance(value, list):
                where.update({item: (name, index) for index, item in enumerate(value)})
            else:
                where[value] = (name, None)
        slots, seen = [], set()
        for position, param in enumerate(params):
            try:
                found = where.get(param)
            except TypeError:  # an unhashable parameter (a list for ANY, JSON): a constant
                found = None
            if found is not None:
                slots.append((position, *found))
                seen.add(param)
        if missing := set(where) - seen:
            names = sorted({where[value][0] for value in missing})
            raise ValueError(f"Arguments not used as values in the statement: {names}")
        return slots

    @staticmethod
    def _bind(params: list, slots: list, values: dict[str, Any]) -> list:
        bound = list(params)
        for position, name, index in slots:
            bound[position] = values[name] if index is None else values[name][index]
        return bound

    def bound_sql(self, using: str = "default", **values: Any) -> tuple[str, list]:
        """The SQL and the parameters a call with these values runs."""
        if not _compiles_once(using):
            return self.fresh_sql(using, **values)
        compiled = self._compiled_for(using, values)
        return compiled["sql"], self._bind(compiled["params"], compiled["slots"], values)

    def fresh_sql(self, using: str = "default", **values: Any) -> tuple[str, list]:
        """What building the statement with these very values compiles to (for the test)."""
        return self._compile_with(using, values)[:2]

    def _compiled_for(self, using: str, values: dict[str, Any]) -> dict[str, Any]:
        key = self._key(using, values)
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:
                placeholders = self._placeholders(values)
                sql, params, extra = self._compile_with(using, {**values, **placeholders})
                compiled = {"sql": sql, "params": params, **extra}
                compiled["slots"] = self._slots(params, placeholders)
                self._compiled[key] = compiled
        return compiled

    def _compile_with(self, using: str, values: dict[str, Any]) -> tuple[str, list, dict]:
        raise NotImplementedError


class PreparedStatement(Prepared):
    """A statement `build(**values)` returns as (sql, params), e.g. ``rawsql.update_sql``."""

    def _compile_with(self, using: str, values: dict[str, Any]) -> tuple[str, list, dict]:
        sql, params = self.build(**values)
        return sql, list(params), {}


class PreparedRead(Prepared):
    """A queryset `build(**values)` returns, read as model instances (select_related and
    annotations included) without building or compiling it again."""

    def _compile_with(self, using: str, values: dict[str, Any]) -> tuple[str, list, dict]:
        queryset: QuerySet = self.build(**values).using(using)
        compiler = queryset.query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        select = compiler.select
        klass_info = compiler.klass_info
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        fields = [s[0] for s in select[: compiler.col_count]]
        extra = {
            "model": klass_info["model"],
            "init_list": [f[0].target.attname for f in select[start:end]],
            "span": (start, end),
            "populators": get_related_populators(klass_info, select, using),
            "annotations": dict(compiler.annotation_col_map or {}),
            "converters": list(compiler.get_converters(fields).items()),
            "col_count": compiler.col_count,
        }
        return sql, list(params), extra

    def fetch(self, using: str = "default", **values: Any) -> list[Model]:
        if not _compiles_once(using):
            return list(self.build(**values).using(using))
        compiled = self._compiled_for(using, values)
        params = self._bind(compiled["params"], compiled["slots"], values)
        connection = connections[using]
        with connection.cursor() as cursor:
            cursor.execute(compiled["sql"], params)
            rows = cursor.fetchall()
        model, init_list = compiled["model"], compiled["init_list"]
        start, end = compiled["span"]
        converters, col_count = compiled["converters"], compiled["col_count"]
        found = []
        for raw in rows:
            row = list(raw[:col_count])
            for position, (functions, expression) in converters:
                value = row[position]
                for function in functions:
                    value = function(value, expression, connection)
                row[position] = value
            obj = model.from_db(using, init_list, row[start:end])
            for populator in compiled["populators"]:
                populator.populate(row, obj)
            for attribute, position in compiled["annotations"].items():
                setattr(obj, attribute, row[position])
            found.append(obj)
        return found

    def first(self, using: str = "default", **values: Any) -> Model | None:
        found = self.fetch(using, **values)
        return found[0] if found else None


def registered() -> list[Prepared]:
    """Every prepared statement defined so far (for the test that checks them all)."""
    return list(_REGISTRY)
