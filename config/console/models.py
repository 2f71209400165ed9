"""The dashboard's figures, counted ahead by beat (console.rollups) from finished work.

Nothing on the hot paths (intake, processing, sending) writes here: beat recounts whole days
from the rows those paths leave (finished deliveries, firings, interactions, link clicks), so a
dashboard read sums a few thousand small rows instead of counting millions.
"""

from django.db import models
from django.utils import timezone


class Metric(models.TextChoices):
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    UNKNOWN = "unknown", "Unknown outcome"
    SEEN = "seen", "Seen"
    FIRED = "fired", "Fired"
    COMMENTS = "comments", "Comments received"
    MESSAGES = "messages", "Messages received"
    TAPPED = "tapped", "Taps on choices"
    CLICKED = "clicked", "Messages with a link clicked"


class DailyFigure(models.Model):
    """How many of one thing happened on one day (UTC), per account and trigger."""

    day = models.DateField()
    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(
        "accounts.InstagramAccount", on_delete=models.CASCADE, related_name="+"
    )
    # A deleted trigger's past sends still count in its account's figures.
    trigger = models.ForeignKey(
        "triggers.Trigger", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    metric = models.CharField(max_length=16, choices=Metric.choices)
    # A delivery's kind; empty for figures about people (comments, taps).
    kind = models.CharField(max_length=16, blank=True)
    # A delivery's reason, or the title of the choice tapped.
    label = models.CharField(max_length=100, blank=True)
    count = models.IntegerField()

    class Meta:
        indexes = [
            models.Index(fields=["day", "workspace"], name="figure_day_workspace"),
            models.Index(fields=["trigger", "day"], name="figure_trigger_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.metric} {self.label}: {self.count}"


class RollupState(models.Model):
    """Where the daily recount is (one row): when it last ran, which older day is next."""

    last_run_at = models.DateTimeField(null=True, blank=True)
    next_older_day = models.IntegerField(default=2, help_text="Days back, recounted next.")
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Daily figures counted at {self.last_run_at}"
