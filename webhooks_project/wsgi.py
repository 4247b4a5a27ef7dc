import io
import os
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webhooks_project.settings")

django_application = get_wsgi_application()

from transactions.checks import log_security_warnings  # noqa: E402 (needs Django set up)

log_security_warnings()


def application(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
    """Django's application, given the length of a chunked request body.

    A body sent with `Transfer-Encoding: chunked` has no Content-Length; gunicorn decodes
    it and says the input ends by itself (`wsgi.input_terminated`), but Django reads only
    CONTENT_LENGTH bytes, so it would see an empty body and call the webhook malformed.
    At most one byte more than the body limit is read here: a body past the limit keeps a
    length past it, and Django refuses it with 413 exactly as one with a Content-Length.
    """
    if (
        "CONTENT_LENGTH" not in environ
        and "HTTP_TRANSFER_ENCODING" in environ
        and environ.get("wsgi.input_terminated")
    ):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = environ["wsgi.input"].read(-1 if limit is None else limit + 1)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
    return django_application(environ, start_response)
