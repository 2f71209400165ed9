"""The console's admin site: Django's admin, opening on the dashboard.

Installed as the default admin site (``config.console.apps.ConsoleAdminConfig``), so every
``admin.register`` and ``admin.site`` keeps working; only the home page and the header differ.
"""

from __future__ import annotations

from django.contrib import admin
from django.template.response import TemplateResponse

from config.console.models import Metric
from config.console.selectors import PERIODS, dashboard_for

METRIC_LABELS = (
    (Metric.SENT, "Sent"),
    (Metric.FAILED, "Failed"),
    (Metric.SKIPPED, "Skipped by a check"),
)


class ConsoleAdminSite(admin.AdminSite):
    site_header = "Instagram DM automation"
    site_title = "DM automation console"
    index_title = "Dashboard"
    # The console is the whole site: no "View site" link to a page that does not exist.
    site_url = None

    def index(self, request, extra_context=None):
        """The dashboard of the person's workspaces (every role has one)."""
        period = request.GET.get("period", "7d")
        context = {
            **self.each_context(request),
            "title": "Dashboard",
            "subtitle": None,
            "app_list": self.get_app_list(request),
            "dashboard": dashboard_for(user=request.user, period=period),
            "periods": PERIODS,
            "metric_labels": METRIC_LABELS,
            **(extra_context or {}),
        }
        request.current_app = self.name
        return TemplateResponse(request, self.index_template or "admin/index.html", context)
