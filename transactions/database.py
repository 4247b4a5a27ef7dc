"""Database connections that the database itself ended (a restart, an idle timeout)."""

import logging

from django.db import connection

logger = logging.getLogger(__name__)


def replace_broken_connection() -> bool:
    """If this request's connection broke, let it go; True if it had.

    Connections are not checked before use (a round trip per webhook), so a restart of the
    database is found by the first query on each connection it ended. In a web process with
    a pool (settings.DATABASE_POOL_SIZE), the restart ended the pool's idle connections as
    well: the pool checks them all now, once, rather than letting each fail a request.
    """
    raw = connection.connection
    if raw is None or not getattr(raw, "broken", False):
        return False
    logger.info("database connection was lost; reconnecting")
    connection.close()  # a pooled connection goes back, and the pool discards it
    pool = getattr(connection, "pool", None)  # PostgreSQL only
    if pool is not None:
        pool.check()
    return True
