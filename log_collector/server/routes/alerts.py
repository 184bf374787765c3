"""``GET /api/alerts``, under the read scope: the alerts the checker (``server.alerts``) raised,
newest first, as ``alerts.storage.list_alerts`` returns them. Failures are those of the other
read routes (``routes._read_api``): 400 naming ``status`` or ``limit``, 401/403 for the key,
503 when the store does not answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.requests import Request

from ..alerts import storage
from ..state import ServerState
from ._read_api import Params, answer, no_other_params, option, parameter, responses, store_of

router = APIRouter(prefix="/api", tags=["query"])


class Alert(BaseModel):
    id: int
    rule: str = Field(description="error_spike, slow_endpoint or silent_service.")
    key: str = Field(description="What the rule watches: the service, or the method and path.")
    status: str = Field(description="open or resolved.")
    severity: str = Field(description="info, warning or critical.")
    summary: str
    details: dict[str, Any] = Field(description="The figures that raised it, per rule.")
    opened_at: str = Field(description="ISO 8601 UTC, like every time below.")
    updated_at: str = Field(description="The last check that saw it, or its resolution.")
    resolved_at: str | None
    notified_at: str | None = Field(description="When the webhook last delivered a change.")


class Alerts(BaseModel):
    alerts: list[Alert] = Field(description="Newest first (by opened_at).")


@router.get(
    "/alerts",
    summary="Alerts raised by the checker, newest first",
    response_model=None,
    openapi_extra={
        "parameters": [
            parameter("status", "open, resolved or all (default all)."),
            parameter(
                "limit",
                f"Alerts at most, 1 to {storage.MAX_LIMIT} (default {storage.DEFAULT_LIMIT}).",
            ),
        ]
    },
    responses=responses(Alerts, "The alerts of that status."),
)
async def get_alerts(request: Request) -> Response:
    def work(state: ServerState, params: Params, now: float) -> Any:
        no_other_params(params, ("status", "limit"))
        return storage.list_alerts(
            store_of(state),
            option(params, "status", "all"),
            option(params, "limit", storage.DEFAULT_LIMIT),
        )

    return await answer(request, work)
