from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('tracker', '0004_audit_and_key_expiry')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Delivery',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('dedupe_key', fields.CharField(unique=True, max_length=200)),
                ('channel', fields.CharField(max_length=8)),
                ('kind', fields.CharField(max_length=32)),
                ('target', fields.CharField(max_length=300)),
                ('event_id', fields.BigIntField(null=True)),
                ('job_id', fields.IntField(null=True)),
                ('contact_id', fields.IntField(null=True)),
                ('endpoint_id', fields.IntField(null=True)),
                ('question_id', fields.IntField(null=True)),
                ('address', fields.CharField(null=True, max_length=254)),
                ('status', fields.CharField(default='queued', max_length=16)),
                ('attempts', fields.IntField(default=0)),
                ('available_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('claim', fields.CharField(null=True, max_length=32)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_error', fields.CharField(null=True, max_length=500)),
            ],
            options={'table': 'delivery', 'app': 'tracker', 'indexes': [Index(fields=['status', 'available_at']), Index(fields=['job_id', 'id']), Index(fields=['endpoint_id', 'id'])], 'pk_attr': 'id', 'table_description': 'The outbox: one message to one recipient on one channel, written in the transaction of its event.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='DeliveryAttempt',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('delivery_id', fields.BigIntField()),
                ('endpoint_id', fields.IntField(null=True)),
                ('attempted_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('outcome', fields.CharField(max_length=16)),
                ('status_code', fields.IntField(null=True)),
                ('latency_ms', fields.FloatField(null=True)),
                ('error', fields.CharField(null=True, max_length=500)),
                ('response_excerpt', fields.CharField(null=True, max_length=2048)),
            ],
            options={'table': 'delivery_attempt', 'app': 'tracker', 'indexes': [Index(fields=['endpoint_id', 'id']), Index(fields=['delivery_id', 'id'])], 'pk_attr': 'id', 'table_description': "One try of a delivery, kept for `GET /webhooks/{id}/attempts` and the job's notification list."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='DevMail',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('delivery_id', fields.BigIntField(null=True)),
                ('recipient', fields.CharField(max_length=254)),
                ('subject', fields.CharField(max_length=500)),
                ('message', fields.TextField(unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'dev_mail', 'app': 'tracker', 'pk_attr': 'id', 'table_description': 'An email that would have gone out, kept instead when no SMTP server is configured (`/dev/mailbox`).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Suppression',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('address', fields.CharField(unique=True, max_length=254)),
                ('reason', fields.CharField(max_length=500)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'suppression', 'app': 'tracker', 'pk_attr': 'id', 'table_description': 'An address we no longer email: it bounced for good, or its owner asked (staff list and clear them).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebhookEndpoint',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('url', fields.CharField(max_length=2000)),
                ('description', fields.CharField(default='', max_length=500)),
                ('account_id', fields.IntField(null=True)),
                ('owner_key_id', fields.IntField(null=True)),
                ('secret', fields.CharField(max_length=100)),
                ('previous_secret', fields.CharField(null=True, max_length=100)),
                ('previous_secret_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('status', fields.CharField(default='active', max_length=16)),
                ('disabled_reason', fields.CharField(null=True, max_length=200)),
                ('failing_since', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('warned_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('rate_per_second', fields.FloatField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'webhook_endpoint', 'app': 'tracker', 'pk_attr': 'id', 'table_description': "An integrator's receiver: what it hears about (event types, optionally one account) and its secret."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebhookSubscription',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('endpoint', fields.ForeignKeyField('tracker.WebhookEndpoint', source_field='endpoint_id', db_constraint=True, to_field='id', related_name='subscriptions', on_delete=OnDelete.CASCADE)),
                ('event_type', fields.CharField(max_length=32)),
            ],
            options={'table': 'webhook_subscription', 'app': 'tracker', 'unique_together': (('event_type', 'endpoint_id'),), 'pk_attr': 'id', 'table_description': 'One event type an endpoint hears about, a row each, so the fan-out joins on it in SQL.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Contact',
            name='alert_emails',
            field=fields.CharField(default='each', db_default='each', max_length=8),
        ),
        ops.AddField(
            model_name='Contact',
            name='estimate_emails',
            field=fields.CharField(default='each', db_default='each', max_length=8),
        ),
        ops.AddField(
            model_name='Contact',
            name='note_emails',
            field=fields.CharField(default='each', db_default='each', max_length=8),
        ),
        ops.AddField(
            model_name='Contact',
            name='page_token',
            field=fields.CharField(null=True, unique=True, max_length=64),
        ),
        ops.AddField(
            model_name='Contact',
            name='progress_emails',
            field=fields.CharField(default='each', db_default='each', max_length=8),
        ),
        ops.AddField(
            model_name='JobEvent',
            name='batch',
            field=fields.CharField(null=True, max_length=32),
        ),
        ops.AddIndex(
            model_name='JobEvent',
            index=Index(fields=['batch']),
        ),
    ]
