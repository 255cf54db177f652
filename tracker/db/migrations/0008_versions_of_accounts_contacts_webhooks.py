from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('tracker', '0007_webhook_rate_and_payload')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Account',
            name='version',
            field=fields.IntField(default=1, db_default=1),
        ),
        ops.AddField(
            model_name='Contact',
            name='version',
            field=fields.IntField(default=1, db_default=1),
        ),
        ops.AddField(
            model_name='WebhookEndpoint',
            name='version',
            field=fields.IntField(default=1, db_default=1),
        ),
    ]
