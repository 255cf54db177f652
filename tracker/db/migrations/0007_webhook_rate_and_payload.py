from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('tracker', '0006_questions_and_surveys')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Delivery',
            name='payload',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddField(
            model_name='WebhookEndpoint',
            name='rate_counted_at',
            field=fields.FloatField(null=True),
        ),
        ops.AddField(
            model_name='WebhookEndpoint',
            name='rate_tokens',
            field=fields.FloatField(null=True),
        ),
    ]
