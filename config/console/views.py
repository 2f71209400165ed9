"""The console's read-only pages, rendered inside the admin's chrome: a delivery, a webhook
event, a person's timeline. Each is reached through its ModelAdmin (which has checked that the
person may see the object) and links only to what the person may open."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse

from accounts.models import Contact
from accounts.permissions import MARKETER_ROLES, SUPPORT_ROLES, is_agency_admin, may
from config.console import timeline
from messaging.actions import delivery_cancel_problem, delivery_retry_problem
from messaging.explain import delivery_next_step, delivery_waiting_for
from messaging.models import Delivery, DeliveryStatus
from triggers import previews


def _may(user, roles, workspace_id: int) -> bool:
    return is_agency_admin(user) or may(user, roles, _Workspace(workspace_id), "")


class _Workspace:
    """Just enough of a workspace for ``may`` (its id), without loading it."""

    def __init__(self, pk: int) -> None:
        self.pk = pk


def links_for(user, workspace_id: int) -> dict[str, bool]:
    """Which kinds of page the person may open in this workspace (links go only there)."""
    return {
        "triggers": _may(user, MARKETER_ROLES, workspace_id),
        "support": _may(user, SUPPORT_ROLES, workspace_id),
        "agency": is_agency_admin(user),
    }


def delivery_page(model_admin: admin.ModelAdmin, request: HttpRequest, delivery: Delivery):
    opts = model_admin.model._meta
    can = links_for(request.user, delivery.workspace_id)
    may_act = can["support"]
    retry_problem = delivery_retry_problem(delivery) if may_act else ""
    cancel_problem = delivery_cancel_problem(delivery) if may_act else ""
    attempts = list(delivery.attempt_log.order_by("number"))
    clicks = list(delivery.link_clicks.order_by("clicked_at")[:20])
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": opts,
        "title": f"{delivery.get_kind_display()} #{delivery.pk}",
        "subtitle": None,
        "delivery": delivery,
        "can": can,
        "may_act": may_act,
        "retry_problem": retry_problem,
        "cancel_problem": cancel_problem,
        "next_step": delivery_next_step(delivery),
        "waiting": delivery_waiting_for(delivery)
        if delivery.status in (DeliveryStatus.QUEUED, DeliveryStatus.SENDING)
        else "",
        "attempts": attempts,
        "clicks": clicks,
        "screens": [previews.Screen("", [previews.bubble_from_meta(delivery.payload or {})])],
        "who": str(delivery.contact) if delivery.contact_id else delivery.recipient,
        "timeline_url": reverse("admin:accounts_contact_change", args=[delivery.contact_id])
        if delivery.contact_id and can["support"]
        else "",
        "has_delete_permission": model_admin.has_delete_permission(request, delivery),
        "changelist_url": reverse("admin:messaging_delivery_changelist"),
    }
    return TemplateResponse(request, "admin/messaging/delivery/record.html", context)


def contact_page(model_admin: admin.ModelAdmin, request: HttpRequest, contact: Contact):
    can = links_for(request.user, contact.account.workspace_id)
    items = timeline.contact_timeline(
        contact=contact,
        user=request.user,
        may_act=can["support"],
        may_open_flows=can["triggers"],
    )
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": f"{contact} on {contact.account}",
        "subtitle": None,
        "contact": contact,
        "items": items,
        "can": can,
        "has_delete_permission": model_admin.has_delete_permission(request, contact),
    }
    return TemplateResponse(request, "admin/accounts/contact/timeline.html", context)
