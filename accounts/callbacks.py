"""Meta's deauthorize and data-deletion callbacks (meta-api.md section 7), as services.

Both carry a ``signed_request`` naming a person by ``user_id``: the app-scoped id of whoever
logged in with Facebook or Instagram to connect accounts. Accounts are matched on
``meta_user_id`` (stored at connect), and for Instagram-Login accounts also on their ids,
because that login's user *is* the account [unsure: which id Meta puts in ``user_id`` for
Instagram Login; the stand-in sends the app-scoped id, our ``ig_alt_id``].

What "the person's data" is, and what stays (docs/tokens.md):

- the accounts they connected: the token, its scopes and expiry, their Meta user id and the
  Instagram-Login app-scoped id are wiped; everything read through that token goes: contacts
  (with their flow runs and trigger firings), deliveries (with their attempts), and the
  webhook events naming the account are redacted. The account row stays as a disconnected
  shell ("needs reconnect") holding the agency's triggers: those are the agency's own content,
  and keeping them lets the account be reconnected without rebuilding its automations.
- a person who only messaged or commented (their Instagram-scoped id equals ``user_id``):
  their contacts on every account, their deliveries, and the events mentioning them.

Events are redacted, not deleted: the body and per-update results are replaced, but the
row and its SHA-256 dedupe key stay, so a redelivery of the same bytes by Meta is still
recognised and sends nothing again. A batched body is redacted as a whole.

Idempotence: a repeat for the same person and callback within ``REPEAT_WINDOW`` answers the
same confirmation code; the work runs again (it finds nothing or only what arrived since) and
its counts are added. Deauthorize runs in the request, in one transaction (a few accounts'
tokens). Data deletion only records the request there and answers at once; a task does the
work in bounded batches and the status page shows how far it got (see below).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.audit import audit_record, secret_changed
from accounts.models import (
    AccountStatus,
    AuditEntry,
    Contact,
    DataDeletionRequest,
    InstagramAccount,
    LoginKind,
    PendingConnection,
)
from accounts.tokens import ACTION_DEAUTHORIZED
from meta.signatures import SignedRequestError, parse_signed_request

logger = logging.getLogger(__name__)

ACTOR_META = "Meta"
ACTION_DATA_DELETED = "data_deleted"
SOURCE_DEAUTHORIZE, SOURCE_DATA_DELETION = "deauthorize", "data_deletion"
STATUS_COMPLETED = "completed"
REPEAT_WINDOW = timedelta(days=1)
MAX_USER_ID_LENGTH = 64
# A callback's signed_request must have been issued this recently (Meta calls at once).
SIGNED_REQUEST_MAX_AGE_SECONDS = 300
# Marks a redacted webhook event (its error field starts with it; replay skips those).
REDACTED_PREFIX = "Redacted"
# Audit entries keep what changed on an account; these values identify the person.
_PERSONAL_AUDIT_FIELDS = ("meta_user_id", "ig_alt_id")


class CallbackError(ValueError):
    """A callback we cannot act on; the message says why (it is answered with 400)."""


def callback_user_id(signed_request: str) -> str:
    """Verify Meta's ``signed_request`` (either app secret, issued in the last few minutes) and
    return the person it names. A captured deauthorize replayed later, after the person
    reconnected, would otherwise wipe the new token."""
    secrets_ = [settings.META_APP_SECRET, settings.INSTAGRAM_APP_SECRET]
    try:
        payload = parse_signed_request(
            signed_request or "", secrets_, max_age_seconds=SIGNED_REQUEST_MAX_AGE_SECONDS
        )
    except SignedRequestError as exc:
        raise CallbackError(str(exc)) from exc
    user_id = payload.get("user_id")
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not isinstance(user_id, str) or not user_id.strip():
        raise CallbackError("The signed_request names no user_id.")
    user_id = user_id.strip()
    # Meta's ids are numeric; anything else would be matched against stored ids and bodies.
    if not user_id.isdigit() or len(user_id) > MAX_USER_ID_LENGTH:
        raise CallbackError("The signed_request's user_id is not a Meta user id.")
    return user_id


def accounts_of_person(user_id: str) -> QuerySet[InstagramAccount]:
    """The accounts the person connected (see the module's note on Instagram Login)."""
    instagram = Q(login_kind=LoginKind.INSTAGRAM) & (Q(ig_alt_id=user_id) | Q(ig_user_id=user_id))
    return InstagramAccount.objects.filter(Q(meta_user_id=user_id) | instagram)


def _new_code() -> str:
    return secrets.token_hex(10)


def _request_for(user_id: str, source: str, now: datetime) -> DataDeletionRequest:
    """The record a repeat within a day reuses (same code for Meta and the person)."""
    recent = (
        DataDeletionRequest.objects.select_for_update()
        .filter(meta_user_id=user_id, source=source, requested_at__gte=now - REPEAT_WINDOW)
        .order_by("-requested_at")
        .first()
    )
    if recent is not None:
        return recent
    return DataDeletionRequest.objects.create(
        confirmation_code=_new_code(), meta_user_id=user_id, source=source, requested_at=now
    )


def _complete(record: DataDeletionRequest, counts: dict[str, int], now: datetime) -> None:
    summary = dict(record.summary or {})
    for key, value in counts.items():
        summary[key] = int(summary.get(key, 0)) + value
    summary["runs"] = int(summary.get("runs", 0)) + 1
    record.summary, record.status, record.completed_at = summary, STATUS_COMPLETED, now
    record.save(update_fields=["summary", "status", "completed_at"])


def _wipe_token(
    account: InstagramAccount, *, sentence: str, now: datetime, also: tuple[str, ...] = ()
) -> list[str]:
    """Disconnect the account and forget its token; returns the fields written.

    ``also`` names other fields the caller changed on ``account``, saved in the same write.
    """
    account.access_token_encrypted = ""
    account.scopes = []
    account.token_expires_at = None
    account.token_refreshed_at = None
    fields = ["access_token_encrypted", "scopes", "token_expires_at", "token_refreshed_at", *also]
    if account.status != AccountStatus.DISABLED:
        # Disabled stays disabled (an operator's choice), but without a token.
        if account.status == AccountStatus.ACTIVE:
            account.status_changed_at = now
            fields.append("status_changed_at")
        account.status = AccountStatus.NEEDS_RECONNECT
        account.reconnect_reason = "token_invalid"
        account.status_reason = sentence
        fields += ["status", "reconnect_reason", "status_reason"]
    account.save(update_fields=[*fields, "updated_at"])
    return fields


@transaction.atomic
def meta_deauthorize(*, user_id: str, now: datetime | None = None) -> DataDeletionRequest:
    """The person removed our app: their accounts need reconnecting and lose their token.

    Queued sends of those accounts are held by the pre-send checklist and expire after
    ``HOLD_LIMIT_SECONDS`` like any other held send; a reconnect releases them.
    """
    now = now or timezone.now()
    record = _request_for(user_id, SOURCE_DEAUTHORIZE, now)
    disconnected = 0
    for account in accounts_of_person(user_id).select_for_update().order_by("pk"):
        before = account.status
        sentence = (
            f"Reconnect @{account.username}: the app was removed on Facebook/Instagram by the "
            "person who connected it, so Meta no longer accepts its token."
        )
        fields = _wipe_token(account, sentence=sentence, now=now)
        disconnected += before == AccountStatus.ACTIVE
        audit_record(
            action=ACTION_DEAUTHORIZED,
            obj=account,
            actor_label=ACTOR_META,
            changes={
                "access_token_encrypted": secret_changed(),
                **({"status": [before, account.status]} if "status" in fields else {}),
            },
            note=f"Deauthorize callback {record.confirmation_code}: token wiped.",
        )
    # Half-finished connections hold the person's user token, now dead.
    pending, _ = PendingConnection.objects.filter(meta_user_id=user_id).delete()
    _complete(
        record,
        {
            "accounts": accounts_of_person(user_id).count(),
            "accounts_disconnected": disconnected,
            "pending_connections": pending,
        },
        now,
    )
    logger.info(
        "Meta deauthorize %s: %d account(s) disconnected", record.confirmation_code, disconnected
    )
    return record


def _id_pattern(ids: set[str]) -> str:
    """A regex for any of the numeric ids as a whole number inside a raw JSON body."""
    alternatives = "|".join(sorted(ids))
    return rf"(^|[^0-9])({alternatives})([^0-9]|$)"


def _scrub_audit(account_ids: list[int]) -> None:
    entries = AuditEntry.objects.filter(
        object_type=InstagramAccount._meta.label_lower,
        object_id__in=[str(pk) for pk in account_ids],
    )
    for entry in entries:
        changes = entry.changes or {}
        if any(name in changes for name in _PERSONAL_AUDIT_FIELDS):
            for name in _PERSONAL_AUDIT_FIELDS:
                if name in changes:
                    changes[name] = ["(deleted)", "(deleted)"]
            AuditEntry.objects.filter(pk=entry.pk).update(changes=changes)


# --- data deletion, worked through by a task (accounts.tasks.run_data_deletion) -----------------
# Meta's request only records what to do and answers with the status page: on a large install
# the work (every stored event scanned for the person's ids) takes far longer than a web
# request may. The task does it in bounded batches, each its own transaction, and stops after
# RUN_SECONDS to queue its next run; progress is saved after every batch, so a run that dies
# (or a lost task, re-queued by beat's accounts sweep) carries on where the last one stopped.
STATUS_IN_PROGRESS = "in_progress"
DELETION_STEPS = ("accounts", "deliveries", "contacts", "events")
DELETE_BATCH = 1000  # rows per delete
EVENT_SCAN_BATCH = 2000  # events read (the next ones by id) per batch
RUN_SECONDS = 60.0  # under the task's 90 s soft time limit
# A deletion in progress untouched this long lost its task: beat queues it again.
STALLED_DELETION = timedelta(minutes=5)


def _queue_run(record_id: int) -> None:
    from accounts.tasks import run_data_deletion

    try:
        run_data_deletion.delay(record_id)
    except Exception:
        # The broker is down: the request is recorded; beat's sweep queues it again later.
        logger.exception("Could not queue data deletion %s; beat will retry", record_id)


def meta_data_deletion(*, user_id: str, now: datetime | None = None) -> DataDeletionRequest:
    """Record Meta's request and queue the deletion (see above); returns the record whose code
    Meta shows the person. A repeat within a day answers the same code; after a completed run
    it runs again (finding nothing, or only what arrived since; its counts are added)."""
    now = now or timezone.now()
    with transaction.atomic():
        record = _request_for(user_id, SOURCE_DATA_DELETION, now)
        if record.status != STATUS_IN_PROGRESS:
            record.status = STATUS_IN_PROGRESS
            record.progress = {"step": DELETION_STEPS[0], "counts": {}}
            record.updated_at = now
            record.save(update_fields=["status", "progress", "updated_at"])
            transaction.on_commit(lambda: _queue_run(record.pk))
    logger.info("Meta data deletion %s queued", record.confirmation_code)
    return record


def _save_progress(record: DataDeletionRequest, **changes) -> None:
    record.progress = {**record.progress, **changes}
    record.updated_at = timezone.now()
    record.save(update_fields=["progress", "updated_at"])


def _counted(record: DataDeletionRequest, **values: int) -> dict:
    """The record's counts so far plus ``values``."""
    counts = dict(record.progress.get("counts", {}))
    for name, value in values.items():
        counts[name] = counts.get(name, 0) + value
    return counts


def _step_accounts(record: DataDeletionRequest, now: datetime) -> bool:
    """Disconnect the person's accounts and forget their tokens and ids (one transaction)."""
    code, user_id = record.confirmation_code, record.meta_user_id
    with transaction.atomic():
        accounts = list(accounts_of_person(user_id).select_for_update().order_by("pk"))
        account_pks = [account.pk for account in accounts]
        business_ids = {i for a in accounts for i in (a.ig_user_id, a.ig_alt_id, a.page_id) if i}
        for account in accounts:
            sentence = (
                f"Reconnect @{account.username}: its data was deleted at the request of the "
                f"person who connected it (Meta data deletion request {code})."
            )
            account.meta_user_id = ""
            also: tuple[str, ...] = ("meta_user_id",)
            if account.login_kind == LoginKind.INSTAGRAM:
                account.ig_alt_id = ""  # Instagram Login's app-scoped id of the person
                also += ("ig_alt_id",)
            _wipe_token(account, sentence=sentence, now=now, also=also)
            audit_record(
                action=ACTION_DATA_DELETED,
                obj=account,
                actor_label=ACTOR_META,
                note=(
                    f"Data deletion request {code}: token, contacts, deliveries and events removed."
                ),
            )
        _scrub_audit(account_pks)
        pending, _ = PendingConnection.objects.filter(meta_user_id=user_id).delete()
        _save_progress(
            record,
            step="deliveries",
            counts=_counted(record, accounts=len(accounts), pending_connections=pending),
            account_ids=account_pks,
            ids=sorted(business_ids | {user_id}),
        )
    return True


def _step_deliveries(record: DataDeletionRequest, now: datetime) -> bool:
    """One batch of the person's deliveries (their attempts go with them); True when done."""
    from messaging.models import Delivery  # deletion must reach every app's rows

    user_id, account_pks = record.meta_user_id, record.progress.get("account_ids", [])
    # Deliveries first: deleting a contact would only unlink its deliveries (SET_NULL).
    theirs = Delivery.objects.filter(
        Q(account__pk__in=account_pks) | Q(contact__igsid=user_id) | Q(recipient=user_id)
    )
    with transaction.atomic():
        batch = list(theirs.values_list("pk", flat=True)[:DELETE_BATCH])
        _, deleted = Delivery.objects.filter(pk__in=batch).delete()
        counts = _counted(record, deliveries=deleted.get(Delivery._meta.label, 0))
        done = len(batch) < DELETE_BATCH
        _save_progress(record, counts=counts, **({"step": "contacts"} if done else {}))
    return done


def _step_contacts(record: DataDeletionRequest, now: datetime) -> bool:
    """One batch of the person's contacts (flow runs and trigger firings go with them)."""
    user_id, account_pks = record.meta_user_id, record.progress.get("account_ids", [])
    theirs = Contact.objects.filter(Q(account__pk__in=account_pks) | Q(igsid=user_id))
    with transaction.atomic():
        batch = list(theirs.values_list("pk", flat=True)[:DELETE_BATCH])
        _, deleted = Contact.objects.filter(pk__in=batch).delete()
        counts = _counted(
            record,
            contacts=deleted.get(Contact._meta.label, 0),
            flow_runs=deleted.get("triggers.FlowRun", 0),
            trigger_firings=deleted.get("triggers.TriggerFiring", 0),
        )
        done = len(batch) < DELETE_BATCH
        if done:
            from webhooks.models import WebhookEvent

            upto = WebhookEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
            _save_progress(record, counts=counts, step="events", events_after=0, events_upto=upto)
        else:
            _save_progress(record, counts=counts)
    return done


def _step_events(record: DataDeletionRequest, now: datetime) -> bool:
    """Redact the events of one id range that name the person's accounts or ids; True when the
    scan has reached the last event stored when it began."""
    from webhooks.models import WebhookEvent, WebhookEventPart

    progress = record.progress
    after, upto = progress.get("events_after", 0), progress.get("events_upto", 0)
    ids = {i for i in progress.get("ids", []) if i}
    account_pks = progress.get("account_ids", [])
    # The next EVENT_SCAN_BATCH events by id (keyset paging): ids need not be dense, and a
    # scan that starts far below the first id must not crawl through empty ranges.
    last_in_batch = (
        WebhookEvent.objects.filter(pk__gt=after, pk__lte=upto)
        .order_by("pk")
        .values_list("pk", flat=True)[EVENT_SCAN_BATCH - 1 : EVENT_SCAN_BATCH]
        .first()
    )
    end = upto if last_in_batch is None else min(last_in_batch, upto)
    query = Q(accounts__pk__in=account_pks) if account_pks else Q(pk__in=[])
    if ids:
        query |= Q(raw_body__regex=_id_pattern(ids))
    marker = (
        f"{REDACTED_PREFIX} for data deletion request {record.confirmation_code} at "
        f"{now:%Y-%m-%d %H:%M} UTC."
    )
    body = json.dumps({"object": "instagram", "entry": [], "redacted": marker})
    with transaction.atomic():
        in_range = WebhookEvent.objects.filter(pk__gt=after, pk__lte=end)
        event_ids = list(
            in_range.filter(query)
            .exclude(error__startswith=REDACTED_PREFIX)
            .values_list("pk", flat=True)
            .distinct()
        )
        # The per-account parts hold the same text: they go; the row and its dedupe key stay.
        WebhookEventPart.objects.filter(event_id__in=event_ids).delete()
        redacted = WebhookEvent.objects.filter(pk__in=event_ids).update(
            raw_body=body, result=[], error=marker
        )
        _save_progress(record, counts=_counted(record, events_redacted=redacted), events_after=end)
    return end >= upto


_STEPS = {
    "accounts": _step_accounts,
    "deliveries": _step_deliveries,
    "contacts": _step_contacts,
    "events": _step_events,
}


def data_deletion_run(*, record_id: int, seconds: float = RUN_SECONDS) -> str:
    """Work a data deletion on for about ``seconds``: batch after batch, each committed with
    its progress; then queue the next run, or complete the record. Safe to run twice: every
    step deletes or redacts what is still there. Returns the record's status."""
    deadline = time.monotonic() + seconds
    now = timezone.now()
    while True:
        record = DataDeletionRequest.objects.filter(pk=record_id).first()
        if record is None or record.status != STATUS_IN_PROGRESS:
            return record.status if record else ""
        step = record.progress.get("step") or DELETION_STEPS[0]
        if step == STATUS_COMPLETED:
            return _finish_deletion(record)
        step_done = _STEPS[step](record, now)
        if step_done and step == DELETION_STEPS[-1]:
            _save_progress(record, step=STATUS_COMPLETED)
            return _finish_deletion(record)
        if time.monotonic() >= deadline:
            _queue_run(record_id)  # the next run carries on from the saved progress
            return STATUS_IN_PROGRESS


def _finish_deletion(record: DataDeletionRequest) -> str:
    counts = dict.fromkeys(_SUMMARY_COUNTS, 0) | record.progress.get("counts", {})
    _complete(record, counts, timezone.now())
    logger.info("Meta data deletion %s done: %s", record.confirmation_code, counts)
    return STATUS_COMPLETED


_SUMMARY_COUNTS = (
    "accounts",
    "contacts",
    "flow_runs",
    "trigger_firings",
    "deliveries",
    "events_redacted",
    "pending_connections",
)


def data_deletions_resume(*, now: datetime | None = None) -> int:
    """Beat: queue again the deletions in progress whose task was lost (untouched a while)."""
    now = now or timezone.now()
    stalled = list(
        DataDeletionRequest.objects.filter(
            status=STATUS_IN_PROGRESS, updated_at__lt=now - STALLED_DELETION
        ).values_list("pk", flat=True)
    )
    for record_id in stalled:
        DataDeletionRequest.objects.filter(pk=record_id).update(updated_at=now)
        _queue_run(record_id)
    return len(stalled)


def data_deletion_share_done(record: DataDeletionRequest) -> int:
    """How far a deletion in progress is, in percent, for its status page."""
    progress = record.progress or {}
    step = progress.get("step")
    if record.status == STATUS_COMPLETED or step == STATUS_COMPLETED:
        return 100
    if step != "events":
        return 5 * (DELETION_STEPS.index(step) if step in DELETION_STEPS else 0)
    upto = progress.get("events_upto") or 0
    scanned = min(progress.get("events_after", 0), upto)
    return 15 + int(84 * scanned / upto) if upto else 99
