"""Migrations on big tables never lock them for a scan or a rewrite (docs/deployment.md).

Every migration on disk is checked: an index on a big table is built concurrently, a
constraint is added NOT VALID, a new column carries no check or foreign key and no column's
type changes in place. Migrations older than the rule are listed, and each must be named in
docs/deployment.md with how to run it.
"""

from pathlib import Path

from django.contrib.postgres.operations import AddConstraintNotValid
from django.contrib.postgres.operations import AddIndexConcurrently as PostgresConcurrentIndex
from django.db import connection, models
from django.db.migrations import operations
from django.db.migrations.loader import MigrationLoader

from config.migration_operations import AddIndexConcurrently

BASE_DIR = Path(__file__).resolve().parents[1]
BIG_TABLES = {
    ("webhooks", "webhookevent"),
    ("webhooks", "webhookeventpart"),
    ("webhooks", "interaction"),
    ("messaging", "linkclick"),
    ("console", "dailyfigure"),
    ("messaging", "delivery"),
    ("messaging", "deliveryattempt"),
    ("messaging", "budgetuse"),
    ("accounts", "contact"),
    ("accounts", "auditentry"),
    ("triggers", "flowrun"),
    ("triggers", "triggerfiring"),
}
# On main before the rule; docs/deployment.md says how to run each on a big install.
BEFORE_THE_RULE = {
    ("webhooks", "0002_outbox_requeue_spacing"),
    ("messaging", "0002_pacing_state"),
}
OUR_APPS = {"accounts", "messaging", "triggers", "webhooks", "console"}


def problems(app_label: str, migration) -> list[str]:
    found = []
    # A table created in the same migration is empty: nothing to scan yet.
    created = {
        op.name.lower() for op in migration.operations if isinstance(op, operations.CreateModel)
    }
    for operation in migration.operations:
        model = (getattr(operation, "model_name", "") or "").lower()
        if (app_label, model) not in BIG_TABLES or model in created:
            continue
        name = f"{app_label}.{migration.name}: {operation.describe()}"
        if isinstance(operation, operations.AddIndex):
            if not isinstance(operation, PostgresConcurrentIndex):
                found.append(f"{name} (use AddIndexConcurrently)")
            elif getattr(migration, "atomic", True):
                found.append(f"{name} (a concurrent index needs atomic = False)")
        elif isinstance(operation, operations.AddConstraint):
            if not isinstance(operation, AddConstraintNotValid):
                found.append(f"{name} (add it NOT VALID, validate later)")
        elif isinstance(operation, operations.AddField):
            if operation.field.many_to_many:
                continue  # a table of its own
            field = operation.field.clone()
            field.set_attributes_from_name(operation.name)
            if field.db_check(connection):
                found.append(f"{name} (a CHECK on a new column scans the table)")
            if field.is_relation and getattr(field, "db_constraint", False):
                found.append(f"{name} (a foreign key constraint scans the table)")
            # Django fills a blank text column with "" as it adds it (quick, like a default).
            filled = field.blank and field.empty_strings_allowed
            if not (field.null or field.has_default() or field.has_db_default() or filled):
                found.append(f"{name} (a NOT NULL column without a default)")
        elif isinstance(operation, operations.AlterField):
            found.append(f"{name} (changing a column in place can rewrite the table)")
    return found


def our_migrations():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    for (app_label, name), migration in sorted(loader.disk_migrations.items()):
        if app_label in OUR_APPS:
            yield app_label, name, migration


def test_no_migration_locks_a_big_table_for_a_scan():
    offending = {}
    for app_label, name, migration in our_migrations():
        if problems(app_label, migration):
            offending[(app_label, name)] = problems(app_label, migration)
    assert set(offending) <= BEFORE_THE_RULE, {
        key: value for key, value in offending.items() if key not in BEFORE_THE_RULE
    }
    # The list is exact: a migration fixed or removed leaves it.
    assert set(offending) == BEFORE_THE_RULE


def test_the_migrations_from_before_the_rule_are_documented():
    text = (BASE_DIR / "docs" / "deployment.md").read_text()
    for app_label, name in BEFORE_THE_RULE:
        assert f"`{app_label}.{name}`" in text


def test_the_check_catches_what_locks_and_lets_the_safe_forms_pass():
    class Unsafe:
        name = "9999_unsafe"
        atomic = True
        operations = [
            operations.AddIndex("delivery", models.Index(fields=["kind"], name="delivery_kind")),
            operations.AddField("webhookevent", "tries", models.PositiveIntegerField(default=0)),
            operations.AlterField("contact", "username", models.CharField(max_length=200)),
        ]

    class Safe:
        name = "9999_safe"
        atomic = False
        operations = [
            AddIndexConcurrently("delivery", models.Index(fields=["kind"], name="delivery_kind")),
            operations.AddField("webhookevent", "note", models.TextField(blank=True, default="")),
            operations.AddIndex("trigger", models.Index(fields=["name"], name="trigger_name")),
        ]

    assert len(problems("messaging", Unsafe)) == 1
    assert len(problems("webhooks", Unsafe)) == 1
    assert len(problems("accounts", Unsafe)) == 1
    for app_label in OUR_APPS:
        assert problems(app_label, Safe) == []
