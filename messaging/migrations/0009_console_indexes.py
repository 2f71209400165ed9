# A big table: the indexes are built without blocking writes (docs/deployment.md).

from django.db import migrations, models

from config.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("messaging", "0008_link_clicks_seen_at"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="delivery",
            index=models.Index(fields=["finished_at"], name="delivery_finished"),
        ),
        AddIndexConcurrently(
            model_name="delivery",
            index=models.Index(
                condition=models.Q(("meta_response_id", ""), _negated=True),
                fields=["meta_response_id"],
                name="delivery_meta_response",
            ),
        ),
        AddIndexConcurrently(
            model_name="delivery",
            index=models.Index(
                condition=models.Q(("seen_at__isnull", False)),
                fields=["seen_at"],
                name="delivery_seen",
            ),
        ),
    ]
