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
    # When the event was handed to the broker (by the outbox relay, the webhook request or
    # the sweeper): the relay publishes pending events that have none (webhooks.relay).
    dispatched_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["state", "received_at"], name="event_state_received"),
            # What the relay looks for: tiny (an event leaves it within milliseconds).
            models.Index(
                fields=["id"],
                condition=models.Q(state=EventState.PENDING, dispatched_at__isnull=True),
                name="event_undispatched",
            ),
        ]

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
    # Read into Interaction rows by beat (webhooks.interactions); the part is written
    # without it, so processing an event costs nothing more.
    interactions_read = models.BooleanField(default=False)

    class Meta:
        ordering = ["event", "pk"]
        indexes = [
            models.Index(fields=["account", "event"], name="event_part_account"),
            models.Index(
                fields=["id"],
                condition=models.Q(interactions_read=False),
                name="event_part_unread",
            ),
        ]

    def __str__(self) -> str:
        return f"Part of webhook event {self.event_id} for {self.instagram_id or 'no account'}"


class InteractionKind(models.TextChoices):
    COMMENT = "comment", "Comment"
    MESSAGE = "message", "Direct message"
    STORY_REPLY = "story_reply", "Story reply"
    STORY_MENTION = "story_mention", "Story mention"
    QUICK_REPLY = "quick_reply", "Tapped a quick reply"
    POSTBACK = "postback", "Tapped a button"
    REACTION = "reaction", "Reaction"
    READ = "read", "Read our message"
    REFERRAL = "referral", "Came from a link or ad"
    DELETED = "deleted", "Unsent a message"
    MENTION = "mention", "Mentioned the account"
    OTHER = "other", "Something else"


class Interaction(models.Model):
    """One thing a person did (a comment, a DM, a story reply or mention, a tap, a read), read
    from a processed event's part with what processing made of it: the inbound side of a
    person's timeline and what support searches. Written by beat (webhooks.interactions),
    never while an event is processed, and removed with the event part it came from."""

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="+")
    part = models.ForeignKey(
        WebhookEventPart, on_delete=models.CASCADE, related_name="interactions"
    )
    position = models.IntegerField(help_text="Which update of the part (0 = the first).")
    account = models.ForeignKey(
        "accounts.InstagramAccount", on_delete=models.CASCADE, related_name="+"
    )
    contact = models.ForeignKey(
        "accounts.Contact",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="interactions",
    )
    igsid = models.CharField("person's id", max_length=64, blank=True)
    username = models.CharField(max_length=64, blank=True)
    kind = models.CharField(max_length=16, choices=InteractionKind.choices)
    text = models.TextField(blank=True)
    media_id = models.CharField("post", max_length=64, blank=True)
    comment_id = models.CharField(max_length=64, blank=True)
    parent_id = models.CharField("reply to comment", max_length=64, blank=True)
    mid = models.CharField("message id", max_length=200, blank=True)
    occurred_at = models.DateTimeField(help_text="Meta's time of it.")
    outcome = models.CharField(max_length=16, blank=True)
    trigger = models.ForeignKey(
        "triggers.Trigger", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # What processing recorded for this update (outcome, trigger, why, deliveries, flow).
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-occurred_at"]
        verbose_name = "activity"
        verbose_name_plural = "people's activity"
        constraints = [
            models.UniqueConstraint(fields=["part", "position"], name="interaction_per_update")
        ]
        indexes = [
            models.Index(fields=["account", "occurred_at"], name="interaction_account_time"),
            models.Index(fields=["contact", "occurred_at"], name="interaction_contact_time"),
            models.Index(fields=["igsid"], name="interaction_igsid"),
            models.Index(
                fields=["comment_id"],
                condition=~models.Q(comment_id=""),
                name="interaction_comment",
            ),
            models.Index(fields=["occurred_at"], name="interaction_time"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} by {self.username or self.igsid} at {self.occurred_at}"
