"""Logging context: the request id of the HTTP request and the transaction a line is about.

Lines about a transaction pass `extra={"transaction_id": ...}`; the filter gives every
record both fields (empty when they do not apply), so the JSON formatter always emits
them and the text format can show them. The request id is set per request by
transactions.middleware.RequestIDMiddleware. No Django imports: gunicorn's own logging
(gunicorn.conf.py) uses this filter too.
"""

import logging
from contextvars import ContextVar

# Per request: a context variable is per thread and per greenlet (gunicorn's gevent workers).
request_id: ContextVar[str] = ContextVar("request_id", default="-")


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id.get()
        if not hasattr(record, "transaction_id"):
            record.transaction_id = None
        return True
