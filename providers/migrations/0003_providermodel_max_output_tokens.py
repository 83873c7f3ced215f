from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('providers', '0002_provider_wire_api'),
    ]

    operations = [
        migrations.AddField(
            model_name='providermodel',
            name='max_output_tokens',
            field=models.PositiveIntegerField(blank=True, help_text='Largest max_tokens this model accepts; translated requests asking for more are clamped. Empty: the built-in table for known models.', null=True),
        ),
    ]
