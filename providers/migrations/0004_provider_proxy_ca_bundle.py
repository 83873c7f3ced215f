from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('providers', '0003_providermodel_max_output_tokens'),
    ]

    operations = [
        migrations.AddField(
            model_name='provider',
            name='proxy',
            field=models.CharField(blank=True, help_text='Empty: the HTTPS_PROXY / HTTP_PROXY / NO_PROXY environment of the gateway. A proxy URL (http://[user:pass@]host:port) for this provider only, or `direct` for never a proxy.', max_length=500),
        ),
        migrations.AddField(
            model_name='provider',
            name='ca_bundle',
            field=models.CharField(blank=True, help_text="Path to a PEM file of the CA certificates to trust for this provider instead of the system's (a private CA). TLS is always verified.", max_length=500),
        ),
    ]
