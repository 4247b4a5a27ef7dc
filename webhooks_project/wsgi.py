import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webhooks_project.settings")

django.setup(set_prefix=False)

from webhooks_project.handlers import ServiceWSGIHandler  # noqa: E402 (needs Django set up)

application = ServiceWSGIHandler()

from transactions.checks import log_security_warnings  # noqa: E402 (needs Django set up)

log_security_warnings()
