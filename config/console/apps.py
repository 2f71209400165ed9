from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class ConsoleConfig(AppConfig):
    """The operator console's own pages: the dashboard, a person's timeline, the actions.

    It sits on top of the four apps: it reads all of them (and calls their services for the
    actions) and none of them imports it, so the one-way flow below it stays as it is.
    """

    name = "config.console"
    # The label keeps the tables and migrations named "console".
    label = "console"
    verbose_name = "Operator console"


class ConsoleAdminConfig(AdminConfig):
    """django.contrib.admin, with the console's site as the default ``admin.site``."""

    default_site = "config.console.site.ConsoleAdminSite"
