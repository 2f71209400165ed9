# A big table: a nullable column is added without a rewrite, and its (partial, small) index
# is built without blocking writes (docs/deployment.md). Events stored before it have no
# dispatched_at: the processed ones are outside the index, and a pending one is handed to the
# broker once more by the relay (harmless: processing runs once per event).

from django.db import migrations, models

from config.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("webhooks", "0006_event_part_interactions_read"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookevent",
            name="dispatched_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        AddIndexConcurrently(
            model_name="webhookevent",
            index=models.Index(
                condition=models.Q(("dispatched_at__isnull", True), ("state", "pending")),
                fields=["id"],
                name="event_undispatched",
            ),
        ),
    ]
