from django.db import models
from django.utils import timezone

from accounts.models import Contact, InstagramAccount, Workspace


class DeliveryKind(models.TextChoices):
    PUBLIC_REPLY = "public_reply", "Public reply to a comment"
    PRIVATE_REPLY = "private_reply", "Private reply to a comment"
    MESSAGE = "message", "Direct message"


class Lane(models.TextChoices):
    """Which of the account's budgets a send uses (messaging.pacer.budgets_for).

    The first three are the delivery kinds themselves; the other two are sends Meta counts
    differently: private replies to live comments (100/s while live, not the hourly budget of
    posts) and Send API messages with audio or video (10/s).
    """

    PUBLIC_REPLY = "public_reply", "Public replies"
    PRIVATE_REPLY = "private_reply", "Private replies"
    MESSAGE = "message", "Messages"
    LIVE_PRIVATE_REPLY = "live_private_reply", "Private replies to live comments"
    MEDIA_MESSAGE = "media_message", "Audio and video messages"


AUDIO_VIDEO = frozenset({"audio", "video"})


def lane_for(kind: str, payload: dict | None, live_media_id: str = "") -> str:
    """The budget lane of a send: its kind, unless live or audio/video make it another."""
    if kind == DeliveryKind.PRIVATE_REPLY and live_media_id:
        return Lane.LIVE_PRIVATE_REPLY
    attachment = (payload or {}).get("attachment")
    is_media = isinstance(attachment, dict) and attachment.get("type") in AUDIO_VIDEO
    if kind == DeliveryKind.MESSAGE and is_media:
        return Lane.MEDIA_MESSAGE
    return kind


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped by a pre-send check"
    UNKNOWN = "unknown", "Unknown outcome (not retried)"


FINAL_STATUSES = (
    DeliveryStatus.SENT,
    DeliveryStatus.FAILED,
    DeliveryStatus.SKIPPED,
    DeliveryStatus.UNKNOWN,
)


class DeliveryReason(models.TextChoices):
    WINDOW_EXPIRED = "window_expired", "Messaging window expired"
    PERMISSION_MISSING = "permission_missing", "Permission missing"
    TOKEN_INVALID = "token_invalid", "Token invalid"
    RATE_LIMITED = "rate_limited", "Rate limited"
    CONVERSATION_CLOSED = "conversation_closed", "Conversation closed"
    CONTENT_REJECTED = "content_rejected", "Content rejected"
    ALREADY_REPLIED = "already_replied", "Already replied"
    RECIPIENT_INVALID = "recipient_invalid", "Recipient invalid"
    META_ERROR = "meta_error", "Meta error"


class Delivery(models.Model):
    """One outbound action (public reply, private reply or DM) and what became of it."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="deliveries")
    account = models.ForeignKey(
        InstagramAccount, on_delete=models.CASCADE, related_name="deliveries"
    )
    trigger = models.ForeignKey(
        "triggers.Trigger",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="deliveries",
    )
    event = models.ForeignKey(
        "webhooks.WebhookEvent",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="deliveries",
    )
    contact = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries"
    )
    kind = models.CharField(max_length=16, choices=DeliveryKind.choices)
    recipient = models.CharField(max_length=64, help_text="IGSID, or the comment id answered.")
    comment_id = models.CharField(max_length=64, blank=True, db_index=True)
    # Set for a private reply to a live comment: the broadcast's media, which must still be
    # live when the reply goes (meta-api.md section 4).
    live_media_id = models.CharField(max_length=64, blank=True)
    # A comment's own creation time, read from Meta when the 7-day margin matters (near the
    # edge): the webhook's entry.time is only when Meta sent it, later on a redelivery.
    comment_created_at = models.DateTimeField(null=True, blank=True)
    # The budget lane when it differs from the kind (Lane); "" means the kind's own.
    lane = models.CharField(max_length=24, choices=Lane.choices, blank=True)
    payload = models.JSONField(help_text="What is sent: the reply text or the message object.")
    # One delivery per purpose (e.g. "private_reply:<comment id>"): a redelivered event or a task
    # that runs twice finds the existing row instead of sending again.
    dedupe_key = models.CharField(max_length=200)

    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED, db_index=True
    )
    reason = models.CharField(max_length=24, choices=DeliveryReason.choices, blank=True)
    detail = models.TextField(blank=True, help_text="What happened, in a sentence.")
    attempts = models.PositiveIntegerField(default=0)
    meta_code = models.IntegerField(null=True, blank=True)
    meta_subcode = models.IntegerField(null=True, blank=True)
    meta_message = models.TextField(blank=True)
    meta_trace_id = models.CharField(max_length=64, blank=True)
    meta_response_id = models.CharField(
        max_length=128, blank=True, help_text="Meta's id for what we sent (comment or message)."
    )

    interaction_at = models.DateTimeField(
        null=True, blank=True, help_text="Meta's time of the interaction answered."
    )
    event_received_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="A queued delivery waits until then (retry, pause, hold)."
    )
    # Handed to the send queue by the account's pacer; empty while it waits for its turn.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    held_since = models.DateTimeField(
        null=True, blank=True, help_text="Held while its account needs reconnecting."
    )
    # Set by the claim; it also identifies the claim, so a worker that lost its claim (the
    # sweeper settled it as abandoned) can never go on to call Meta or overwrite the outcome.
    sending_started_at = models.DateTimeField(null=True, blank=True)
    # Set, in the same statement that checks the claim, right before each call to Meta.
    call_started_at = models.DateTimeField(null=True, blank=True)
    # A sending worker renews this while it works on the send; once it passes, the worker is
    # gone and the sweeper settles the send (docs/queues.md, "Crash and broker recovery").
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Times Meta was asked what became of an `unknown` send (messaging/resolve.py).
    resolution_checks = models.SmallIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Meta's read receipt for this message (or a later one to the same person): the funnel's
    # "seen". Written by the read event itself, never on the send path.
    seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "dedupe_key"], name="delivery_unique_purpose_per_account"
            )
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="delivery_status_created"),
            models.Index(fields=["account", "status"], name="delivery_account_status"),
            models.Index(
                fields=["account", "status", "dispatched_at", "next_attempt_at"],
                name="delivery_pacer_due",
            ),
            # The sending-queues page: an account's sends of the last minute, without reading
            # every send it ever made.
            models.Index(
                fields=["account", "sent_at"],
                condition=models.Q(status="sent"),
                name="delivery_account_sent",
            ),
            # The console: a day of finished sends at a time (its daily figures, the lists its
            # figures link to), read receipts finding the message they name, seen per day.
            models.Index(fields=["finished_at"], name="delivery_finished"),
            models.Index(
                fields=["meta_response_id"],
                condition=~models.Q(meta_response_id=""),
                name="delivery_meta_response",
            ),
            models.Index(
                fields=["seen_at"], condition=models.Q(seen_at__isnull=False), name="delivery_seen"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"

    @property
    def pace_lane(self) -> str:
        return self.lane or self.kind

    @property
    def latency_ms(self) -> float | None:
        """From the webhook's arrival to Meta's answer."""
        if self.sent_at and self.event_received_at:
            return (self.sent_at - self.event_received_at).total_seconds() * 1000
        return None


class SharedFlag(models.Model):
    """A short-lived flag (e.g. "a pacer run is already queued"): the database fallback."""

    key = models.CharField(max_length=100, unique=True)
    expires_at = models.FloatField()

    def __str__(self) -> str:
        return self.key


class BudgetUse(models.Model):
    """One use of a per-account budget: the database fallback of the Redis rate limiter."""

    key = models.CharField(max_length=100)
    at = models.FloatField(help_text="Unix time of the use.")

    class Meta:
        indexes = [models.Index(fields=["key", "at"], name="budget_use_key_at")]

    def __str__(self) -> str:
        return f"{self.key} at {self.at}"


class DeliveryAttempt(models.Model):
    """One call to Meta for a delivery: kept so support can see each try."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.FloatField(null=True, blank=True)
    outcome = models.CharField(max_length=10)
    http_status = models.IntegerField(null=True, blank=True)
    reason = models.CharField(max_length=24, blank=True)
    meta_code = models.IntegerField(null=True, blank=True)
    meta_subcode = models.IntegerField(null=True, blank=True)
    meta_message = models.TextField(blank=True)
    meta_trace_id = models.CharField(max_length=64, blank=True)
    request_summary = models.CharField(max_length=300, blank=True)
    response_excerpt = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"Attempt {self.number} of delivery {self.delivery_id}"


class LinkClick(models.Model):
    """A person opened a tracked link of one of our messages (/l/<token>, messaging.links)."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="link_clicks")
    # Copied from the delivery so the console counts clicks per trigger and day directly.
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(InstagramAccount, on_delete=models.CASCADE, related_name="+")
    trigger = models.ForeignKey(
        "triggers.Trigger", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    link_index = models.IntegerField(help_text="Which link of the message (0 = the first).")
    url = models.TextField()
    clicked_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-clicked_at"]

    def __str__(self) -> str:
        return f"Click on link {self.link_index} of delivery {self.delivery_id}"


class AccountQueue(InstagramAccount):
    """An account seen as a sending queue (admin view: depth, rate, budget, drain time)."""

    class Meta:
        proxy = True
        verbose_name = "sending queue"
