from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts import crypto


class Workspace(models.Model):
    """An agency's client: the unit that owns accounts, triggers and deliveries."""

    name = models.CharField(max_length=150, unique=True)
    blocked_words = models.JSONField(
        default=list, blank=True, help_text="Messages containing these words are not sent."
    )
    blocked_domains = models.JSONField(
        default=list, blank=True, help_text="Messages linking to these domains are not sent."
    )
    # What the console measures (the dashboard's funnel): either can be switched off.
    track_link_clicks = models.BooleanField(
        "track link clicks",
        default=True,
        help_text="Links in buttons go through this app's /l/ address, so a click is counted "
        "per message. Off: people get the link as written and clicks are not counted.",
    )
    track_seen = models.BooleanField(
        "record when messages are seen",
        default=True,
        help_text="Meta's read receipts mark our messages as seen (the funnel's 'seen').",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class LoginKind(models.TextChoices):
    FACEBOOK = "facebook", "Facebook Login (page-linked)"
    INSTAGRAM = "instagram", "Instagram Login"


class AccountStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    NEEDS_RECONNECT = "needs_reconnect", "Needs reconnect"
    DISABLED = "disabled", "Disabled"


class InstagramAccount(models.Model):
    """A connected Instagram professional account and the token we send with."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="accounts")
    ig_user_id = models.CharField(
        "Instagram user id", max_length=64, unique=True, help_text="The id webhooks carry."
    )
    # Instagram Login's /me can return a `user_id` that differs from `id`: events may name either.
    ig_alt_id = models.CharField("alternate id", max_length=64, blank=True, db_index=True)
    username = models.CharField(max_length=64, db_index=True)
    page_id = models.CharField("Facebook page id", max_length=64, blank=True)
    login_kind = models.CharField(
        max_length=16, choices=LoginKind.choices, default=LoginKind.FACEBOOK
    )
    access_token_encrypted = models.TextField(blank=True, editable=False)
    token_expires_at = models.DateTimeField(null=True, blank=True)
    scopes = models.JSONField(default=list, blank=True, help_text="Permissions the token grants.")
    status = models.CharField(
        max_length=20, choices=AccountStatus.choices, default=AccountStatus.ACTIVE, db_index=True
    )
    status_reason = models.TextField(blank=True)
    # The named reason (token_invalid or permission_missing) while it needs reconnecting.
    reconnect_reason = models.CharField(max_length=24, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    send_limit_per_second = models.PositiveIntegerField(
        null=True, blank=True, help_text="Send API calls per second; empty = the default (100)."
    )
    private_reply_limit_per_hour = models.PositiveIntegerField(
        null=True, blank=True, help_text="Private replies per hour; empty = the default (750)."
    )
    # Set after a rate-limit error or high usage headers: no sends until then.
    paused_until = models.DateTimeField(null=True, blank=True)
    pause_reason = models.TextField(blank=True)
    # Meta's latest usage figure (percent of the tightest limit), read from response headers.
    usage_percent = models.PositiveSmallIntegerField(default=0)
    # The token's life: when it was issued or last refreshed, and when beat last read its
    # granted permissions from Meta.
    token_refreshed_at = models.DateTimeField(null=True, blank=True)
    permissions_checked_at = models.DateTimeField(null=True, blank=True)
    # The person (Meta's app-scoped user id) whose login granted the token: Meta's deauthorize
    # and data-deletion callbacks name them.
    meta_user_id = models.CharField(max_length=64, blank=True, db_index=True)
    connected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="connected_accounts",
    )
    # The webhook subscription as Meta lists it when read back after subscribing (never the
    # POST's word alone): the fields, when it was read, and what is wrong with it ("" = fine).
    webhook_fields = models.JSONField(
        default=list, blank=True, help_text="Webhook fields Meta lists for this account."
    )
    webhook_checked_at = models.DateTimeField(null=True, blank=True)
    webhook_problem = models.TextField(blank=True)
    # When a webhook for the account last arrived (to the minute): silence tells an operator
    # the subscription is broken before anyone notices missing replies.
    last_webhook_at = models.DateTimeField(null=True, blank=True)
    # Consecutive ambiguous refusals (code 10/200 naming no permission), newest last; cleared
    # by a successful send. Several different people in a row hold the account
    # (messaging.refusals).
    refusal_streak = models.JSONField(default=list, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["username"]
        verbose_name = "Instagram account"

    def __str__(self) -> str:
        return f"@{self.username}"

    @property
    def access_token(self) -> str:
        return crypto.decrypt(self.access_token_encrypted)

    @access_token.setter
    def access_token(self, value: str) -> None:
        self.access_token_encrypted = crypto.encrypt(value)

    @property
    def masked_token(self) -> str:
        try:
            return crypto.mask(self.access_token)
        except crypto.TokenDecryptionError:
            return "(cannot decrypt)"

    @property
    def sender_id(self) -> str:
        """The node that sends messages: the page for Facebook Login, else the IG user."""
        if self.login_kind == LoginKind.FACEBOOK and self.page_id:
            return self.page_id
        return self.ig_user_id

    def owns_id(self, instagram_id: str) -> bool:
        return instagram_id in {self.ig_user_id, self.ig_alt_id} - {""}


class Contact(models.Model):
    """A person who interacted with an account, by Instagram-scoped id."""

    account = models.ForeignKey(InstagramAccount, on_delete=models.CASCADE, related_name="contacts")
    igsid = models.CharField("Instagram-scoped id", max_length=64)
    username = models.CharField(max_length=64, blank=True)
    # From Meta's user profile (asked once the person has written: Meta needs their consent),
    # so people who only ever sent DMs are found by their @username and name too.
    name = models.CharField(max_length=150, blank=True)
    profile_checked_at = models.DateTimeField(null=True, blank=True)
    # Only messages, story replies, postbacks and taps open the 24-hour window; comments do not.
    last_interaction_at = models.DateTimeField(
        null=True, blank=True, help_text="Last inbound message (opens the 24-hour window)."
    )
    last_comment_at = models.DateTimeField(null=True, blank=True)
    # Learned from an error (blocked, restricted, unavailable): not messaged until they write.
    conversation_closed_at = models.DateTimeField(null=True, blank=True)
    conversation_closed_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "igsid"], name="contact_unique_per_account")
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"@{self.username}" if self.username else self.igsid


class Role(models.TextChoices):
    AGENCY_ADMIN = "agency_admin", "Agency admin (everything)"
    MARKETER = "marketer", "Marketer (triggers and flows)"
    SUPPORT = "support", "Support (reads deliveries, events and contacts)"


class Membership(models.Model):
    """A person's role in one workspace. Agency admins need none: they see everything."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "workspace"], name="membership_unique")
        ]
        ordering = ["workspace", "user"]

    def __str__(self) -> str:
        return f"{self.user} as {self.get_role_display()} in {self.workspace}"


class Invitation(models.Model):
    """An invitation to sign up: the only way in (there is no open sign-up)."""

    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices)
    # Empty for an agency admin (who sees every workspace).
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, null=True, blank=True, related_name="invitations"
    )
    key = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="invitations_sent",
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="invitation_accepted",
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        where = f" to {self.workspace}" if self.workspace_id else ""
        return f"{self.email} as {self.get_role_display()}{where}"


class AuditEntry(models.Model):
    """Who changed what, when, and how: triggers, flows, accounts, workspaces, people."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_entries",
    )
    # Kept when the user is deleted, and names commands and Meta callbacks ("import_triggers").
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=16)  # created, changed, deleted, or an event name
    object_type = models.CharField(max_length=64, db_index=True)  # "triggers.trigger"
    object_id = models.CharField(max_length=64, db_index=True)
    object_repr = models.CharField(max_length=200)
    workspace = models.ForeignKey(
        Workspace, on_delete=models.SET_NULL, null=True, blank=True, related_name="audit_entries"
    )
    # {"field": [before, after]}; secrets are recorded as "(changed)", never their values.
    changes = models.JSONField(default=dict, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-at"]
        verbose_name_plural = "audit trail"

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.object_repr} at {self.at:%Y-%m-%d %H:%M}"


class PendingConnection(models.Model):
    """Between Meta's OAuth callback and the operator's choice of account (a few minutes)."""

    key = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="pending_connections"
    )
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE)
    login_kind = models.CharField(max_length=16, choices=LoginKind.choices)
    # The user-level token, encrypted like account tokens; choices hold page tokens encrypted.
    user_token_encrypted = models.TextField()
    token_expires_at = models.DateTimeField(null=True, blank=True)
    meta_user_id = models.CharField(max_length=64, blank=True)
    scopes = models.JSONField(default=list, blank=True)
    choices = models.JSONField(default=list, blank=True)
    reconnect_account = models.ForeignKey(
        InstagramAccount, on_delete=models.CASCADE, null=True, blank=True
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Pending {self.get_login_kind_display()} connection for {self.workspace}"


class DataDeletionRequest(models.Model):
    """Meta's data-deletion callback: what was asked, what we removed, the code Meta shows."""

    confirmation_code = models.CharField(max_length=32, unique=True)
    meta_user_id = models.CharField(max_length=64, db_index=True)
    source = models.CharField(max_length=16, default="data_deletion")  # or "deauthorize"
    requested_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    # received (a deauthorize), in_progress (data deletion, worked through by a task), completed
    status = models.CharField(max_length=16, default="received")
    summary = models.JSONField(default=dict, blank=True)
    # Where the data deletion task is (step, counts so far, how far the event scan got): the
    # status page shows it, and a run that stopped carries on from there.
    progress = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"Deletion {self.confirmation_code} ({self.status})"
