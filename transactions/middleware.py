"""The request id every log line of an HTTP request carries (see transactions/log.py)."""

import re

from django.http import HttpRequest
from log_request_id.middleware import RequestIDMiddleware as _RequestIDMiddleware

# What we accept from a caller's X-Request-ID; anything else is replaced by a fresh id,
# so a caller cannot stuff arbitrary text into our logs.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class RequestIDMiddleware(_RequestIDMiddleware):
    """django-log-request-id's middleware, taking the caller's X-Request-ID only if it is sane."""

    def _get_request_id(self, request: HttpRequest) -> str:
        incoming = request.META.get(self.request_id_header or "", "")
        return incoming if _REQUEST_ID.fullmatch(incoming) else self._generate_id()
