import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_tracking_switches_contact_profile"),
        ("triggers", "0005_trigger_pause"),
        ("webhooks", "0004_event_parts"),
    ]

    operations = [
        migrations.CreateModel(
            name="Interaction",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "position",
                    models.IntegerField(help_text="Which update of the part (0 = the first)."),
                ),
                ("igsid", models.CharField(blank=True, max_length=64, verbose_name="person's id")),
                ("username", models.CharField(blank=True, max_length=64)),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("comment", "Comment"),
                            ("message", "Direct message"),
                            ("story_reply", "Story reply"),
                            ("story_mention", "Story mention"),
                            ("quick_reply", "Tapped a quick reply"),
                            ("postback", "Tapped a button"),
                            ("reaction", "Reaction"),
                            ("read", "Read our message"),
                            ("referral", "Came from a link or ad"),
                            ("deleted", "Unsent a message"),
                            ("mention", "Mentioned the account"),
                            ("other", "Something else"),
                        ],
                        max_length=16,
                    ),
                ),
                ("text", models.TextField(blank=True)),
                ("media_id", models.CharField(blank=True, max_length=64, verbose_name="post")),
                ("comment_id", models.CharField(blank=True, max_length=64)),
                (
                    "parent_id",
                    models.CharField(blank=True, max_length=64, verbose_name="reply to comment"),
                ),
                ("mid", models.CharField(blank=True, max_length=200, verbose_name="message id")),
                ("occurred_at", models.DateTimeField(help_text="Meta's time of it.")),
                ("outcome", models.CharField(blank=True, max_length=16)),
                ("result", models.JSONField(blank=True, default=dict)),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="accounts.instagramaccount",
                    ),
                ),
                (
                    "contact",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="interactions",
                        to="accounts.contact",
                    ),
                ),
                (
                    "event",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="webhooks.webhookevent",
                    ),
                ),
                (
                    "part",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="interactions",
                        to="webhooks.webhookeventpart",
                    ),
                ),
                (
                    "trigger",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="triggers.trigger",
                    ),
                ),
            ],
            options={
                "ordering": ["-occurred_at"],
                "verbose_name": "activity",
                "verbose_name_plural": "people's activity",
                "indexes": [
                    models.Index(
                        fields=["account", "occurred_at"], name="interaction_account_time"
                    ),
                    models.Index(
                        fields=["contact", "occurred_at"], name="interaction_contact_time"
                    ),
                    models.Index(fields=["igsid"], name="interaction_igsid"),
                    models.Index(
                        condition=models.Q(("comment_id", ""), _negated=True),
                        fields=["comment_id"],
                        name="interaction_comment",
                    ),
                    models.Index(fields=["occurred_at"], name="interaction_time"),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("part", "position"), name="interaction_per_update"
                    )
                ],
            },
        ),
    ]
