from django.db import migrations


def create_lobby(apps, schema_editor):
    apps.get_model("chat", "Room").objects.get_or_create(name="lobby")


class Migration(migrations.Migration):
    dependencies = [("chat", "0001_initial")]
    operations = [migrations.RunPython(create_lobby, migrations.RunPython.noop)]
