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
