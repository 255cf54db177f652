from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('tracker', '0008_versions_of_accounts_contacts_webhooks')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='JobEstimate',
            index=Index(fields=['computed_at']),
        ),
    ]
