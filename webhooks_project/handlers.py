"""The WSGI handler: webhook deliveries take a short middleware chain of their own.

The middleware that the admin and the browsable docs need (sessions, authentication,
messages, CSRF, django-axes, WhiteNoise's static files, CommonMiddleware's slash
redirects) does nothing for a webhook, whose view is csrf-exempt, authenticates by
signature and always answers JSON; with django-prometheus' per-request metrics it cost
about a quarter of a webhook's CPU time in gunicorn (docs/benchmarks.md). Requests for the
webhook URL therefore run through settings.WEBHOOK_MIDDLEWARE, every other request
through settings.MIDDLEWARE.
"""

from django.conf import settings
from django.core.handlers.base import BaseHandler
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.http import HttpResponseBase
from django.test.utils import override_settings
from django.urls import reverse


class _WebhookChain(BaseHandler):
    def __init__(self) -> None:
        super().__init__()
        # BaseHandler only reads settings.MIDDLEWARE; this runs once, at start-up.
        with override_settings(MIDDLEWARE=settings.WEBHOOK_MIDDLEWARE):
            self.load_middleware()


class ServiceWSGIHandler(WSGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self._webhook_path = reverse("webhook")
        self._webhook_chain = _WebhookChain()

    def get_response(self, request: WSGIRequest) -> HttpResponseBase:
        if request.path_info == self._webhook_path:
            return self._webhook_chain.get_response(request)
        return super().get_response(request)
