from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("triggers", "0004_flow_run_status_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="trigger",
            name="paused_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="trigger",
            name="paused_by",
            field=models.CharField(blank=True, editable=False, max_length=150),
        ),
    ]
