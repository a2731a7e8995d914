"""Messages form a tree (edits and regenerated replies are versions of each other): each message gets the
message it follows. Existing conversations stay linear: each message follows the one before it."""

import django.db.models.deletion
from django.db import migrations, models

BATCH = 1000


def link_in_order(apps, schema_editor):
    Message = apps.get_model("streaming", "Message")
    rows = Message.objects.order_by("conversation_id", "created_at", "id").values_list("id", "conversation_id")
    previous = (None, None)
    batch = []
    for message_id, conversation_id in rows.iterator(chunk_size=BATCH):
        if conversation_id == previous[1]:
            batch.append(Message(id=message_id, parent_id=previous[0]))
        previous = (message_id, conversation_id)
        if len(batch) >= BATCH:
            Message.objects.bulk_update(batch, ["parent"])
            batch = []
    Message.objects.bulk_update(batch, ["parent"])


class Migration(migrations.Migration):
    dependencies = [
        ("streaming", "0005_budget_reservation"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                help_text="The message this one follows; messages with the same parent are versions of each other.",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="children",
                to="streaming.message",
            ),
        ),
        migrations.RunPython(link_in_order, migrations.RunPython.noop, elidable=True),
    ]
