# A big table: the index is built without blocking writes (docs/deployment.md).

from django.db import migrations, models

from config.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("triggers", "0005_trigger_pause"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="triggerfiring",
            index=models.Index(fields=["fired_at"], name="firing_fired_at"),
        ),
    ]
