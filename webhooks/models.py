from django.db import models
from django.utils import timezone


class EventState(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSED = "processed", "Processed: a trigger answered"
    NO_MATCH = "no_match", "No trigger matched"
    IGNORED = "ignored", "Ignored (own comment, unknown account, not a trigger event)"
    FAILED = "failed", "Failed"
    REJECTED = "rejected", "Rejected (not a JSON object)"


class WebhookEvent(models.Model):
    """One POST from Meta, stored raw before we answer 200 (it may batch many updates)."""

    raw_body = models.TextField()
    # SHA-256 of the raw body: Meta redelivers the same bytes, and a redelivery must not send twice.
    dedupe_key = models.CharField(max_length=64, unique=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    state = models.CharField(
        max_length=16, choices=EventState.choices, default=EventState.PENDING, db_index=True
    )
    error = models.TextField(blank=True)
    # Per update: what processing made of it (matched trigger, why ignored, ...).
    result = models.JSONField(default=list, blank=True)
    account_ids = models.JSONField(default=list, blank=True)
    # The connected accounts the event concerns, linked when it is processed: what scopes the
    # event log to a workspace's people (an unattributed event is for agency admins only).
    accounts = models.ManyToManyField(
        "accounts.InstagramAccount", blank=True, related_name="webhook_events"
    )
    redeliveries = models.PositiveIntegerField(default=0)
    processing_attempts = models.PositiveIntegerField(default=0)
    # The outbox sweeper's re-queues: spaced out exponentially, because a pending event is
    # usually waiting in a long queue (a viral burst), not lost.
    requeued_count = models.PositiveIntegerField(default=0)
    last_requeued_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["state", "received_at"], name="event_state_received")]

    def __str__(self) -> str:
        return f"Webhook event {self.pk} ({self.state})"


class WebhookEventPart(models.Model):
    """The updates of one event that name one account (``entry[].id``), with what processing
    made of them: Meta batches several accounts' updates into one POST, and each workspace's
    people may read only their accounts' part (webhooks.selectors). Written when the event is
    processed; an unconnected account's part has no account (agency admins only)."""

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="parts")
    instagram_id = models.CharField("account id in the body", max_length=64, blank=True)
    account = models.ForeignKey(
        "accounts.InstagramAccount",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="webhook_event_parts",
    )
    # {"object": ..., "entry": [this account's entries]}, as received.
    body = models.TextField()
    result = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["event", "pk"]
        indexes = [models.Index(fields=["account", "event"], name="event_part_account")]

    def __str__(self) -> str:
        return f"Part of webhook event {self.event_id} for {self.instagram_id or 'no account'}"
