from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('tracker', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='HistoryFit',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('workflow_key', fields.CharField(max_length=63)),
                ('fitted_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('payload', fields.BinaryField()),
                ('summary', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ],
            options={'table': 'history_fit', 'app': 'tracker', 'indexes': [Index(fields=['workflow_key', 'fitted_at'])], 'pk_attr': 'id', 'table_description': 'The history model of one workflow, fitted by one process and read by all.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='JobEstimate',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('job', fields.ForeignKeyField('tracker.Job', source_field='job_id', db_constraint=True, to_field='id', related_name='estimates', on_delete=OnDelete.CASCADE)),
                ('computed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('eta_p50', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('eta_p90', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('cost_p50', fields.DecimalField(max_digits=18, decimal_places=4)),
                ('cost_p90', fields.DecimalField(max_digits=18, decimal_places=4)),
                ('basis', fields.CharField(max_length=16)),
                ('overdue', fields.BooleanField()),
                ('detail', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ],
            options={'table': 'job_estimate', 'app': 'tracker', 'indexes': [Index(fields=['job_id', 'id'])], 'pk_attr': 'id', 'table_description': 'One recomputed estimate of a job, kept when it differs from the one before.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Job',
            name='actual_cost',
            field=fields.DecimalField(default=0, db_default=0, max_digits=18, decimal_places=4),
        ),
        ops.AddField(
            model_name='Job',
            name='announced',
            field=fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='Job',
            name='cost_p50',
            field=fields.DecimalField(null=True, max_digits=18, decimal_places=4),
        ),
        ops.AddField(
            model_name='Job',
            name='cost_p90',
            field=fields.DecimalField(null=True, max_digits=18, decimal_places=4),
        ),
        ops.AddField(
            model_name='Job',
            name='estimate_basis',
            field=fields.CharField(null=True, max_length=16),
        ),
        ops.AddField(
            model_name='Job',
            name='estimated_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Job',
            name='eta_p50',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Job',
            name='eta_p90',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Job',
            name='held_since',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Job',
            name='stage_held_seconds',
            field=fields.FloatField(default=0.0, db_default=0.0),
        ),
        ops.AddField(
            model_name='Job',
            name='stages_completed',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddIndex(
            model_name='Job',
            index=Index(fields=['status', 'estimated_at']),
        ),
        ops.AddField(
            model_name='StageVisit',
            name='held_seconds',
            field=fields.FloatField(default=0.0, db_default=0.0),
        ),
    ]
