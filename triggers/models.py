from django.db import models
from django.utils import timezone

from accounts.models import InstagramAccount


class TriggerEvent(models.TextChoices):
    COMMENT = "comment", "Comment"
    STORY_REPLY = "story_reply", "Story reply"
    STORY_MENTION = "story_mention", "Story mention"
    DM = "dm", "Direct message"


class MatchMode(models.TextChoices):
    EXACT = "exact", "Exact: the whole text is the keyword"
    CONTAINS = "contains", "Contains: the keyword appears as whole words"
    FUZZY = "fuzzy", "Fuzzy: tolerates typos and word variants"
    INTENT = "intent", "Intent: meaning, not spelling"
    ANY = "any", "Any text"


class Trigger(models.Model):
    """A rule: when this event with matching text arrives, send these replies."""

    account = models.ForeignKey(InstagramAccount, on_delete=models.CASCADE, related_name="triggers")
    name = models.CharField(max_length=150)
    event = models.CharField(max_length=20, choices=TriggerEvent.choices)
    match = models.CharField(max_length=10, choices=MatchMode.choices, default=MatchMode.CONTAINS)
    keywords = models.JSONField(default=list, blank=True)
    examples = models.JSONField(default=list, blank=True)
    media_ids = models.JSONField(
        default=list, blank=True, help_text="Comment triggers: posts it listens on; empty = all."
    )
    public_replies = models.JSONField(
        default=list, blank=True, help_text="Comment triggers: one is picked at random."
    )
    messages = models.JSONField(
        default=list, blank=True, help_text='Messages sent in order, e.g. [{"text": "..."}].'
    )
    enabled = models.BooleanField(default=True)
    priority = models.IntegerField(default=0, help_text="Higher wins when several match.")
    # Any further fields of the trigger file, kept so export round-trips them.
    extra = models.JSONField(default=dict, blank=True)
    last_public_reply_index = models.IntegerField(null=True, blank=True, editable=False)
    # Paused: it still answers (events say so), but its sends wait in the queue until it is
    # resumed (triggers.services.trigger_pause). Not part of the trigger file.
    paused_at = models.DateTimeField(null=True, blank=True, editable=False)
    paused_by = models.CharField(max_length=150, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "name"], name="trigger_name_unique_per_account"
            )
        ]
        ordering = ["account", "-priority", "name"]

    def __str__(self) -> str:
        return self.name


class FiresOn(models.TextChoices):
    MATCH = "match", "Its keywords match (the usual trigger)"
    NO_MATCH = "no_match", "Nothing else matched (default reply)"
    FIRST_MESSAGE = "first_message", "A person's first message (welcome)"


# Cool-down used when a trigger names none: a thank-you for every story mention or a default
# reply to every unmatched message would read as spam.
DEFAULT_COOLDOWNS = {"story_mention": 86400, "no_match": 86400, "first_message": 0}


def trigger_option(trigger: Trigger, name: str, default=None):
    """A trigger-file option stored in ``extra`` (see docs/triggers.md)."""
    value = trigger.extra.get(name, default) if isinstance(trigger.extra, dict) else default
    return default if value is None else value


def trigger_fires_on(trigger: Trigger) -> str:
    return trigger_option(trigger, "fires_on", FiresOn.MATCH)


def trigger_cooldown_seconds(trigger: Trigger) -> int:
    explicit = trigger_option(trigger, "cooldown_seconds")
    if explicit is not None:
        return int(explicit)
    fires_on = trigger_fires_on(trigger)
    if fires_on != FiresOn.MATCH:
        return DEFAULT_COOLDOWNS[fires_on]
    return DEFAULT_COOLDOWNS.get(trigger.event, 0)


class TriggerFiring(models.Model):
    """A trigger answered a person: the record per-contact cool-downs are checked against."""

    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="firings")
    contact = models.ForeignKey(
        "accounts.Contact", on_delete=models.CASCADE, related_name="trigger_firings"
    )
    # Meta's time of the interaction answered, so cool-downs count in the person's time.
    fired_at = models.DateTimeField()
    # What was answered ("comment:<id>", "mid:<mid>"): a redelivered event is the same firing.
    origin_key = models.CharField(max_length=200)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["trigger", "contact", "origin_key"], name="firing_unique_per_origin"
            )
        ]
        indexes = [
            models.Index(fields=["trigger", "contact", "fired_at"], name="firing_cooldown_lookup"),
            # The console's daily figures read one day of firings at a time.
            models.Index(fields=["fired_at"], name="firing_fired_at"),
        ]

    def __str__(self) -> str:
        return f"{self.trigger} -> {self.contact} at {self.fired_at:%Y-%m-%d %H:%M}"


class FlowStatus(models.TextChoices):
    RUNNING = "running", "Sending its messages"
    WAITING_TAP = "waiting_tap", "Waiting for a tap or a reply"
    CHECKING_FOLLOW = "checking_follow", "Checking whether the person follows"
    WAITING_FOLLOW = "waiting_follow", "Asked the person to follow; waiting for their tap"
    DONE = "done", "Done"
    STOPPED = "stopped", "Stopped (a message could not be sent)"


class FlowRun(models.Model):
    """One person's way through a trigger's flow: where they are and what it waits for."""

    account = models.ForeignKey(InstagramAccount, on_delete=models.CASCADE, related_name="flows")
    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="flow_runs")
    contact = models.ForeignKey(
        "accounts.Contact", on_delete=models.CASCADE, related_name="flow_runs"
    )
    # The event that started the run ("comment:<id>", "mid:<mid>"): one run per event.
    origin_key = models.CharField(max_length=200)
    comment_id = models.CharField(max_length=64, blank=True)
    step = models.CharField(max_length=100, blank=True, help_text="Empty: the trigger's messages.")
    position = models.PositiveIntegerField(default=0, help_text="Index of the current message.")
    # The event that started the current stretch (the origin, then each tap): part of the
    # deliveries' dedupe keys, so a redelivered tap sends nothing twice but a new tap does.
    segment_key = models.CharField(max_length=200)
    status = models.CharField(
        max_length=16, choices=FlowStatus.choices, default=FlowStatus.RUNNING, db_index=True
    )
    detail = models.TextField(blank=True)
    waiting_delivery_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    started_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "origin_key"], name="flow_run_unique_per_origin"
            )
        ]
        indexes = [
            models.Index(
                fields=["contact", "status", "updated_at"], name="flow_run_contact_status"
            ),
            # The flow sweeper: runs in a state, oldest first.
            models.Index(fields=["status", "updated_at"], name="flow_run_status_updated"),
        ]
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.trigger} for {self.contact} ({self.status})"


class MediaPublishTime(models.Model):
    """When a post was published, read from Meta once per post for "next post" triggers.

    Read outside any transaction before an event is processed (triggers.services.
    comment_prepare), so processing itself never calls Meta while it holds the event's lock.
    An unknown time (Meta could not say) is kept too and asked again after a while.
    """

    account = models.ForeignKey(
        InstagramAccount, on_delete=models.CASCADE, related_name="media_publish_times"
    )
    media_id = models.CharField(max_length=64)
    published_at = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "media_id"], name="media_time_per_account")
        ]

    def __str__(self) -> str:
        return f"Media {self.media_id}: {self.published_at or 'unknown'}"
