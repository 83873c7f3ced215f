from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('gateway', '0004_ledger_prices_teams'),
    ]

    operations = [
        migrations.AddField(
            model_name='usagerecord',
            name='dropped_tools',
            field=models.JSONField(blank=True, default=list, help_text='Hosted tools left out of the upstream request (route policy).'),
        ),
    ]
