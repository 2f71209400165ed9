"""Operator actions on triggers: pause and resume.

A paused trigger still answers (so events and firings keep their record, and its cool-downs
run), but every send it makes waits in its account's queue, saying so, until it is resumed;
then they go, each still checked against its window. Sends already handed to a worker when it
was paused still go. Disabling (``enabled``) is different: a disabled trigger never answers.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from messaging import actions as messaging_actions
from triggers.models import Trigger


@transaction.atomic
def trigger_pause(*, trigger: Trigger, actor) -> int:
    """Pause the trigger's sends; returns how many queued sends now wait (-1: already paused)."""
    if trigger.paused_at is not None:
        return -1
    now = timezone.now()
    trigger.paused_at = now
    trigger.paused_by = actor.get_username() if actor is not None else ""
    # save(): updated_at moves, so every worker's cached copy of the trigger is refreshed.
    trigger.save(update_fields=["paused_at", "paused_by", "updated_at"])
    held = messaging_actions.deliveries_hold_for_trigger(
        trigger_id=trigger.pk,
        detail=messaging_actions.paused_detail(trigger.name, actor, now),
    )
    audit_record(action="paused", obj=trigger, actor=actor, note=f"{held} queued send(s) wait")
    return held


@transaction.atomic
def trigger_resume(*, trigger: Trigger, actor) -> int:
    """Resume the trigger; returns how many waiting sends go out now (-1: it was not paused)."""
    if trigger.paused_at is None:
        return -1
    trigger.paused_at, trigger.paused_by = None, ""
    trigger.save(update_fields=["paused_at", "paused_by", "updated_at"])
    released = messaging_actions.deliveries_release_for_trigger(trigger_id=trigger.pk)
    audit_record(action="resumed", obj=trigger, actor=actor, note=f"{released} send(s) released")
    return released
