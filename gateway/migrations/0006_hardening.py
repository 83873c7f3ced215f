from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("gateway", "0003_budget"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="usagerecord",
            options={"ordering": ["-created_at"],
                     "permissions": [("view_spend", "Can view spend reports and the usage API")]},
        ),
    ]
