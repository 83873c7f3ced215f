from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("gateway", "0005_usagerecord_dropped_tools"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="usagerecord",
            options={"ordering": ["-created_at"],
                     "permissions": [("view_spend", "Can view spend reports and the usage API")]},
        ),
    ]
