"""What every console action and list shares: a confirmation page that says what will happen
and to how many, and the "export this list as CSV" page (both audited, both role-checked by the
ModelAdmin they are used from)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from accounts.models import AuditEntry

CONFIRMED = "confirmed"
# A confirmation page names at most this many of the items it acts on.
LISTED = 50


def confirm_action(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    action: str,
    title: str,
    will: str,
    ready: list,
    refused: dict[str, int] | None = None,
    button: str,
    run: Callable[[list], str],
    warning: str = "",
    describe: Callable[[object], str] = str,
):
    """First call: a page saying what the action ``will`` do to ``ready`` (and why the others
    are left alone), with Yes and No. The posted Yes runs ``run(ready)`` and returns to the
    list with its message. Returns the page, or None once the action has run."""
    if request.POST.get(CONFIRMED) == "yes":
        if not ready:
            model_admin.message_user(request, "Nothing to do: " + will, messages.WARNING)
            return None
        model_admin.message_user(request, run(ready), messages.SUCCESS)
        return None
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": opts,
        "will": will,
        "warning": warning,
        "items": [describe(item) for item in ready[:LISTED]],
        "more": max(0, len(ready) - LISTED),
        "count": len(ready),
        "refused": sorted((refused or {}).items()),
        "refused_count": sum((refused or {}).values()),
        "action": action,
        "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
        "button": button,
        "back": request.META.get("HTTP_REFERER", "")
        or reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/console/confirm_action.html", context)


class _Echo:
    def write(self, value: str) -> str:
        return value


class CsvExportMixin:
    """ "Export this list as CSV" on a changelist: the rows the list shows now (its filters and
    search), for the person looking (the list's own scoping), after a confirmation page. Each
    export is written to the audit trail. ``csv_fields``: [(heading, row -> value)]."""

    csv_fields: list[tuple[str, Callable]] = []
    change_list_template = "admin/console/change_list.html"

    def changelist_view(self, request, extra_context=None):
        opts = self.model._meta
        export = reverse(f"admin:{opts.app_label}_{opts.model_name}_export")
        query = request.GET.urlencode()
        context = {
            # "Deliveries", not Django's "Select delivery to view".
            "title": str(opts.verbose_name_plural).capitalize(),
            "export_url": f"{export}?{query}" if query else export,
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)

    def get_urls(self):
        opts = self.model._meta
        return [
            path(
                "export/",
                self.admin_site.admin_view(self.export_view),
                name=f"{opts.app_label}_{opts.model_name}_export",
            ),
            *super().get_urls(),
        ]

    def csv_rows(self, queryset, user) -> Iterable:
        """The rows to write (run while the response streams: ``user`` is who asked)."""
        return queryset.iterator(chunk_size=2000)

    def export_view(self, request: HttpRequest):
        if not self.has_view_permission(request):
            raise PermissionDenied
        params = request.GET.copy() if request.method == "GET" else request.POST.copy()
        params.pop(CONFIRMED, None)
        params.pop("csrfmiddlewaretoken", None)
        # The changelist reads its filters from the request's GET: the same ones as the list.
        request.GET = params
        changelist = self.get_changelist_instance(request)
        queryset = changelist.get_queryset(request)
        count = queryset.count()
        opts = self.model._meta
        if request.method == "POST" and request.POST.get(CONFIRMED) == "yes":
            audit_export(request.user, opts, count, params.urlencode())
            return self._stream(queryset, opts, request.user)
        described = ", ".join(
            f"{name} = {value}" for name, value in params.items() if name not in ("o", "p")
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Export {opts.verbose_name_plural} as CSV",
            "opts": opts,
            "count": count,
            "described": described,
            "query": params,
            "back": f"{reverse(f'admin:{opts.app_label}_{opts.model_name}_changelist')}?"
            f"{urlencode(params)}",
            "columns": [heading for heading, _ in self.csv_fields],
        }
        return TemplateResponse(request, "admin/console/confirm_export.html", context)

    def _stream(self, queryset, opts, user) -> StreamingHttpResponse:
        writer = csv.writer(_Echo())
        headings = [heading for heading, _ in self.csv_fields]

        def rows():
            yield writer.writerow(headings)
            for obj in self.csv_rows(queryset, user):
                yield writer.writerow([_cell(value(obj)) for _, value in self.csv_fields])

        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{opts.model_name}-{stamp}.csv"'
        return response


def duration_words(seconds: float) -> str:
    """6 ms, 6.1 s, 4 min, 2.5 h: a duration as a person reads it."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 90:
        return f"{seconds:.1f} s".replace(".0 s", " s")
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _cell(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = str(value)
    # A cell starting like a formula is run by spreadsheet programs: keep it text.
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text


def audit_export(actor, opts, count: int, query: str) -> AuditEntry:
    return AuditEntry.objects.create(
        actor=actor,
        actor_label=actor.get_username(),
        action="exported",
        object_type=opts.label_lower,
        object_id="",
        object_repr=f"{count} {opts.verbose_name_plural} as CSV"[:200],
        note=f"Filters: {query or 'none'}",
    )
