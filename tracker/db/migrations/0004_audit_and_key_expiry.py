from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('tracker', '0003_hot_estimate_updates')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AuditEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('occurred_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('actor', fields.CharField(max_length=100)),
                ('action', fields.CharField(max_length=32)),
                ('subject', fields.CharField(max_length=64)),
                ('reason', fields.CharField(max_length=1000)),
                ('detail', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ],
            options={'table': 'audit_entry', 'app': 'tracker', 'pk_attr': 'id', 'table_description': 'Something an admin removed for good, recorded in the same transaction and kept after it is gone.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='ApiKey',
            name='expires_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
