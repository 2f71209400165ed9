# A big table: the index is built without blocking writes (docs/deployment.md).

from django.db import migrations, models

from config.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("messaging", "0005_delivery_lane_live_comment_time"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="delivery",
            index=models.Index(
                condition=models.Q(("status", "sent")),
                fields=["account", "sent_at"],
                name="delivery_account_sent",
            ),
        ),
    ]
