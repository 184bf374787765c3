"""One router per API: ``ingest`` (POST /logs), ``otlp`` (POST /v1/logs, OTLP/HTTP),
``health`` (/, /healthz, /readyz), ``stats`` (/stats), ``sql`` (POST /api/sql), ``ask``
(POST /api/ask and /api/ask/stream), ``query`` (GET /api/logs, histogram, facets, traces,
services, endpoints), ``views`` (/api/views, the dashboard's saved views), ``tail`` (GET
/api/tail, Server-Sent Events), ``alerts`` (GET /api/alerts, what the alert checker found),
and the dashboard (``server.ui``: /ui/, its shell and static files), served with the read
scope's routes because it shows what they answer.
``app.create_app`` mounts those of its role (``routers_for``).

Routes take the raw ``Request`` and answer with ``JSONResponse``: no request
or response models, because validation is ``ingest``'s job and a model per
record would cost more than storing it. The query routes describe their
bodies to the OpenAPI schema by hand (``openapi_extra``, ``responses``). What the read routes
share (the read scope, the failure shape, those descriptions) is in ``_read_api``, so no route
module imports another.
"""

from fastapi import APIRouter

from .. import ui
from ..auth import ROLES
from . import alerts, ask, health, ingest, otlp, query, sql, stats, tail, views

# Mounted by every role: the probes a load balancer or orchestrator asks.
COMMON_ROUTERS = (health.router,)
INGEST_ROUTERS = (ingest.router, otlp.router)
# The read scope: /stats and everything under /api/, and the dashboard that reads them (its
# shell holds no data and asks no key; the key guards /api/*).
QUERY_ROUTERS = (
    stats.router,
    sql.router,
    ask.router,
    query.router,
    views.router,
    tail.router,
    alerts.router,
    ui.router,
)
ROUTERS = INGEST_ROUTERS + COMMON_ROUTERS + QUERY_ROUTERS


def routers_for(role: str) -> tuple[APIRouter, ...]:
    """The routers a server of ``role`` (``ingest``, ``query`` or ``all``) mounts."""
    if role == "ingest":
        return INGEST_ROUTERS + COMMON_ROUTERS
    if role == "query":
        return COMMON_ROUTERS + QUERY_ROUTERS
    if role == "all":
        return ROUTERS
    raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")


__all__ = ["COMMON_ROUTERS", "INGEST_ROUTERS", "QUERY_ROUTERS", "ROUTERS", "routers_for"]
