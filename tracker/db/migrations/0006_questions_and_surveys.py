from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('tracker', '0005_notifications')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Question',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('job', fields.ForeignKeyField('tracker.Job', source_field='job_id', db_constraint=True, to_field='id', related_name='questions', on_delete=OnDelete.CASCADE)),
                ('body', fields.TextField(unique=False)),
                ('asked_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('answered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('answer_note_id', fields.IntField(null=True)),
                ('answered_by', fields.CharField(null=True, max_length=100)),
            ],
            options={'table': 'question', 'app': 'tracker', 'indexes': [Index(fields=['answered_at', 'id']), Index(fields=['job_id', 'id'])], 'pk_attr': 'id', 'table_description': "A customer's question from the status page, waiting for staff until answered by a public note."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SurveyResponse',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('job', fields.ForeignKeyField('tracker.Job', source_field='job_id', db_constraint=True, to_field='id', related_name='survey_responses', on_delete=OnDelete.CASCADE)),
                ('score', fields.SmallIntField()),
                ('comment', fields.CharField(default='', max_length=2000)),
                ('answered_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'survey_response', 'app': 'tracker', 'unique_together': (('job_id',),), 'pk_attr': 'id', 'table_description': "The customer's satisfaction with a completed job: a score from 1 to 5, answerable once."},
            bases=['Model'],
        ),
    ]
