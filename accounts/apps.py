from django.apps import AppConfig
from django.core.management import call_command
from django.db.models.signals import post_migrate


def _create_cache_table(sender, using: str, **kwargs) -> None:
    """`migrate` also creates the database cache's table (a no-op when the cache is Redis or
    the table exists), so "run migrate on every start" is still all a deploy needs."""
    call_command("createcachetable", database=using, verbosity=0)


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Workspaces and Instagram accounts"

    def ready(self) -> None:
        post_migrate.connect(_create_cache_table, sender=self, dispatch_uid="create_cache_table")
