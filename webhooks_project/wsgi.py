import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webhooks_project.settings")

application = get_wsgi_application()

from transactions.checks import log_security_warnings  # noqa: E402 (needs Django set up)

log_security_warnings()
