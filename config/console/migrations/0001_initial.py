import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("accounts", "0006_tracking_switches_contact_profile"),
        ("triggers", "0005_trigger_pause"),
    ]

    operations = [
        migrations.CreateModel(
            name="RollupState",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("last_run_at", models.DateTimeField(blank=True, null=True)),
                (
                    "next_older_day",
                    models.IntegerField(default=2, help_text="Days back, recounted next."),
                ),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
        migrations.CreateModel(
            name="DailyFigure",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("day", models.DateField()),
                (
                    "metric",
                    models.CharField(
                        choices=[
                            ("sent", "Sent"),
                            ("failed", "Failed"),
                            ("skipped", "Skipped"),
                            ("unknown", "Unknown outcome"),
                            ("seen", "Seen"),
                            ("fired", "Fired"),
                            ("comments", "Comments received"),
                            ("messages", "Messages received"),
                            ("tapped", "Taps on choices"),
                            ("clicked", "Messages with a link clicked"),
                        ],
                        max_length=16,
                    ),
                ),
                ("kind", models.CharField(blank=True, max_length=16)),
                ("label", models.CharField(blank=True, max_length=100)),
                ("count", models.IntegerField()),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="accounts.instagramaccount",
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
                (
                    "workspace",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="accounts.workspace",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["day", "workspace"], name="figure_day_workspace"),
                    models.Index(fields=["trigger", "day"], name="figure_trigger_day"),
                ],
            },
        ),
    ]
