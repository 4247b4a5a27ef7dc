"""Creates the django-q2 schedule that sweeps for due transactions every minute.

The sweep is the backstop for every way a transaction could otherwise wait forever:
a lost wake-up, a worker killed mid-call (its lease expires), a retry whose backoff
has passed. Created here, so no deployment depends on someone adding it by hand.
"""

from django.db import migrations

SWEEP_NAME = "transactions: process due transactions"


def create_sweep(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=SWEEP_NAME,
        defaults={
            "func": "transactions.tasks.process_due_transactions",
            "schedule_type": "I",  # MINUTES
            "minutes": 1,
            "repeats": -1,
        },
    )


def delete_sweep(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SWEEP_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("transactions", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_sweep, delete_sweep)]
