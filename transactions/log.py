"""Logging context: the request id of the HTTP request and the transaction a line is about.

Lines about a transaction pass `extra={"transaction_id": ...}`; this filter gives every
record both fields (empty when they do not apply), so the JSON formatter always emits
them and the text format can show them. The request id is set by
transactions.middleware.RequestIDMiddleware.
"""

import logging

from log_request_id import local


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = getattr(local, "request_id", "-")
        if not hasattr(record, "transaction_id"):
            record.transaction_id = None
        return True
