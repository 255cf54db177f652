from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('tracker', '0009_estimates_by_time')]

    initial = False

    operations = [
        ops.AddField(
            model_name='IdempotencyRecord',
            name='headers',
            field=fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
    ]
