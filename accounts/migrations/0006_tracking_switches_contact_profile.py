from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_data_deletion_progress"),
    ]

    operations = [
        migrations.AddField(
            model_name="contact",
            name="name",
            field=models.CharField(blank=True, max_length=150),
        ),
        migrations.AddField(
            model_name="contact",
            name="profile_checked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="workspace",
            name="track_link_clicks",
            field=models.BooleanField(
                default=True,
                help_text="Links in buttons go through this app's /l/ address, so a click is counted per message. Off: people get the link as written and clicks are not counted.",
                verbose_name="track link clicks",
            ),
        ),
        migrations.AddField(
            model_name="workspace",
            name="track_seen",
            field=models.BooleanField(
                default=True,
                help_text="Meta's read receipts mark our messages as seen (the funnel's 'seen').",
                verbose_name="record when messages are seen",
            ),
        ),
    ]
