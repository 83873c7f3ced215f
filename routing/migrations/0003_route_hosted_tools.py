from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('routing', '0002_route_rules_affinity'),
    ]

    operations = [
        migrations.AddField(
            model_name='route',
            name='hosted_tools',
            field=models.CharField(choices=[('map', "Map to the target's own equivalent, else drop"), ('drop', 'Drop from the upstream request'), ('refuse', 'Refuse the request (400)')], default='map', help_text="Hosted tools offered by the client (web_search …) on a target of another API: map to the target's native tool where one exists, else drop (named in x-gateway-dropped-tools), or refuse. A tool_choice that forces a hosted tool the target lacks is always refused.", max_length=10),
        ),
    ]
