# A big table: the index is built without blocking writes (docs/deployment.md).

from django.db import migrations, models

from config.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("triggers", "0003_media_publish_time"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="flowrun",
            index=models.Index(fields=["status", "updated_at"], name="flow_run_status_updated"),
        ),
    ]
