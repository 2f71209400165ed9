# A big table: a column with a constant default is added without a rewrite, and its index is
# built without blocking writes (docs/deployment.md). Parts stored before it are unread, so
# beat reads them into interactions too, a batch at a time.

from django.db import migrations, models

from config.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("webhooks", "0005_interactions"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookeventpart",
            name="interactions_read",
            field=models.BooleanField(default=False),
        ),
        AddIndexConcurrently(
            model_name="webhookeventpart",
            index=models.Index(
                condition=models.Q(("interactions_read", False)),
                fields=["id"],
                name="event_part_unread",
            ),
        ),
    ]
