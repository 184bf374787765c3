"""One router per API: ``ingest`` (POST /logs), ``health`` (/, /healthz,
/readyz), ``stats`` (/stats). ``app.create_app`` mounts them.

Routes take the raw ``Request`` and answer with ``JSONResponse``: no request
or response models, because validation is ``ingest``'s job and a model per
record would cost more than storing it.
"""

from . import health, ingest, stats

ROUTERS = (ingest.router, health.router, stats.router)

__all__ = ["ROUTERS"]
