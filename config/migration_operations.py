"""Migration operations for big tables that stay portable (docs/deployment.md).

PostgreSQL builds an index on a big table without blocking writes only with
``CREATE INDEX CONCURRENTLY`` (django.contrib.postgres's ``AddIndexConcurrently``, which must
run outside a transaction: the migration sets ``atomic = False``). SQLite, the demo's database,
has no such thing and no concurrent writers to block: there the plain ``AddIndex`` runs.
"""

from django.contrib.postgres.operations import (
    AddIndexConcurrently as PostgresAddIndexConcurrently,
)
from django.db.migrations.operations import AddIndex


class AddIndexConcurrently(PostgresAddIndexConcurrently):
    """CREATE INDEX CONCURRENTLY on PostgreSQL, CREATE INDEX elsewhere."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)
