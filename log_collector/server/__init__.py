"""The ingest server: POST /logs into PostgreSQL or an embedded SQLite file.

Needs the ``server`` extra (FastAPI, uvicorn, psycopg). ``python -m
log_collector.server --db URL --port N`` runs it.
"""

from .app import create_app
from .connections import ConnectionLimits
from .ingest import Limits
from .run import DEFAULT_DB_URL, migrate, serve
from .store import StoreUnavailable, open_store

__all__ = [
    "DEFAULT_DB_URL",
    "ConnectionLimits",
    "Limits",
    "StoreUnavailable",
    "create_app",
    "migrate",
    "open_store",
    "serve",
]
