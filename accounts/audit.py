"""The audit trail: who changed which trigger, flow, account, workspace or person, and how.

Entries are written by the admin (through ``AuditedAdminMixin``), by commands that change
things (the actor is the person named with ``--as``, else the command), and by the OAuth and
token code (the actor is the person who connected, or "Meta" / "beat"). Secrets are never
recorded: a changed token shows as "(changed)".
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
from typing import Any

from django.db import models

from accounts.models import AuditEntry, InstagramAccount, Workspace

# Fields whose values must never reach the audit trail.
SECRET_FIELDS = frozenset({"access_token_encrypted", "user_token_encrypted", "password", "key"})
# Bookkeeping that changes on its own and says nothing about what a person did.
IGNORED_FIELDS = frozenset({"updated_at", "last_public_reply_index", "last_login"})


def _plain(value: Any) -> Any:
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, models.Model):
        return str(value)
    return value


def snapshot(obj: models.Model) -> dict[str, Any]:
    """The object's field values as JSON-able data (foreign keys by id), secrets masked."""
    values = {}
    for field in obj._meta.concrete_fields:
        if field.name in IGNORED_FIELDS:
            continue
        value = getattr(obj, field.attname)
        values[field.name] = _fingerprint(value) if field.name in SECRET_FIELDS else _plain(value)
    return values


def _fingerprint(value: object) -> str:
    # Enough to tell that a secret changed; diff() reports only "(changed)", never this.
    return "secret:" + hashlib.sha256(str(value or "").encode()).hexdigest()[:16]


def secret_changed() -> list[str]:
    """How the trail shows any change to a secret: that it changed, never a value."""
    return ["(changed)", "(changed)"]


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, list]:
    """{field: [before, after]} for what changed; a secret only says that it changed."""
    before, after = before or {}, after or {}
    changes = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old != new:
            changes[name] = secret_changed() if name in SECRET_FIELDS else [old, new]
    return changes


def workspace_of(obj: models.Model) -> Workspace | None:
    """The workspace an object belongs to, for scoping the trail to a workspace's people."""
    if isinstance(obj, Workspace):
        return obj
    if isinstance(obj, InstagramAccount):
        return obj.workspace
    for path in ("workspace", "account"):
        related = getattr(obj, path, None)
        if isinstance(related, Workspace):
            return related
        if isinstance(related, InstagramAccount):
            return related.workspace
    return None


def audit_record(
    *,
    action: str,
    obj: models.Model,
    actor=None,
    actor_label: str = "",
    changes: dict | None = None,
    note: str = "",
) -> AuditEntry:
    """Write one entry. ``actor`` is a user (or None for commands, Meta, beat)."""
    label = actor_label or (actor.get_username() if actor is not None else "system")
    workspace = workspace_of(obj)
    return AuditEntry.objects.create(
        actor=actor if actor is not None and actor.pk else None,
        actor_label=label[:150],
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        workspace=workspace,
        changes=changes or {},
        note=note,
    )


class AuditedAdminMixin:
    """Record every add, change and delete made through this ModelAdmin."""

    def save_model(self, request, obj, form, change):
        before = None
        if change and obj.pk:
            stored = type(obj).objects.filter(pk=obj.pk).first()
            before = snapshot(stored) if stored is not None else None
        super().save_model(request, obj, form, change)
        changes = diff(before, snapshot(obj))
        if change and not changes:
            return
        audit_record(
            action="changed" if change else "created",
            obj=obj,
            actor=request.user,
            changes=changes,
        )

    def delete_model(self, request, obj):
        audit_record(
            action="deleted", obj=obj, actor=request.user, changes=diff(snapshot(obj), None)
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            audit_record(
                action="deleted", obj=obj, actor=request.user, changes=diff(snapshot(obj), None)
            )
        super().delete_queryset(request, queryset)
