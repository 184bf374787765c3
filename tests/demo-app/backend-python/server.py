"""The demo service of the original system, logging through log-collector.

A FastAPI app with in-memory state: log in as demo / demo123, create, list, update and delete
todos, hit an endpoint that raises, and one that is slow and timed. Every request goes through
the pure ASGI middleware, so each of its records carries path, method, ip, trace_id (and user_id
when the caller sends x-user-id), and "Request received" / "Request completed" frame it.

The middleware wraps the whole FastAPI app rather than being added with ``add_middleware``:
Starlette answers an unhandled exception's 500 from a middleware outside those, so only a
wrapper outside the app puts ``x-trace-id`` on that response too (see the docstring of
log_collector/integrations/asgi.py).

    python tests/demo-app/backend-python/server.py --port 8001

See README.md next to this file for running it against ``log-collector serve``. Tests build the
app with ``create_app(client)`` and their own client; nothing happens at import.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations, and
# `User` below is local to create_app, where a string annotation could not be resolved.
import argparse
import asyncio
import itertools
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Response
from pydantic import BaseModel

from log_collector import AsyncLogClient
from log_collector.integrations.asgi import LogCollectorMiddleware

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo123"
DEMO_USER_ID = "user-demo"


class Credentials(BaseModel):
    username: str
    password: str


class TodoIn(BaseModel):
    title: str
    done: bool = False


class TodoUpdate(BaseModel):
    title: str | None = None
    done: bool | None = None


def create_app(client: AsyncLogClient | None = None) -> LogCollectorMiddleware:
    """The demo app, wrapped in the logging middleware; without ``client`` it makes one from
    the environment and closes it on shutdown (LOG_SERVER_URL, SERVICE_NAME, ... as for any
    AsyncLogClient)."""
    owns_client = client is None
    log = client or AsyncLogClient(service="demo-backend-python", enable_global_error_handler=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("Demo backend started", action_type="startup")
        yield
        log.info("Demo backend stopping", action_type="shutdown")
        if owns_client:
            log.close()

    app = FastAPI(title="log-collector demo backend", lifespan=lifespan)

    sessions: dict[str, str] = {}  # token -> user_id
    todos: dict[int, dict[str, object]] = {}
    ids = itertools.count(1)

    def current_user(authorization: Annotated[str | None, Header()] = None) -> str:
        token = (authorization or "").removeprefix("Bearer ").strip()
        user_id = sessions.get(token)
        if user_id is None:
            log.warn("Unauthenticated request", action_type="auth")
            raise HTTPException(status_code=401, detail="log in first")
        return user_id

    User = Annotated[str, Depends(current_user)]

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/login")
    async def login(credentials: Credentials) -> dict[str, str]:
        if credentials.username == DEMO_USERNAME and credentials.password == DEMO_PASSWORD:
            token = secrets.token_urlsafe(24)
            sessions[token] = DEMO_USER_ID
            log.info("Login succeeded", user_id=DEMO_USER_ID, action_type="login")
            return {"token": token, "user_id": DEMO_USER_ID}
        # The password is never logged; the username helps spot credential stuffing.
        log.warn("Login failed", username=credentials.username, action_type="login")
        raise HTTPException(status_code=401, detail="invalid username or password")

    @app.get("/api/todos")
    async def list_todos(user_id: User) -> list[dict[str, object]]:
        mine = [todo for todo in todos.values() if todo["owner"] == user_id]
        log.debug("Todos listed", user_id=user_id, count=len(mine), action_type="todo_list")
        return mine

    @app.post("/api/todos", status_code=201)
    async def create_todo(todo: TodoIn, user_id: User) -> dict[str, object]:
        created = {"id": next(ids), "owner": user_id, **todo.model_dump()}
        todos[created["id"]] = created  # type: ignore[index]
        log.info("Todo created", user_id=user_id, todo_id=created["id"], action_type="todo_create")
        return created

    @app.put("/api/todos/{todo_id}")
    async def update_todo(todo_id: int, update: TodoUpdate, user_id: User) -> dict[str, object]:
        todo = _owned(todo_id, user_id)
        todo.update(update.model_dump(exclude_none=True))
        log.info("Todo updated", user_id=user_id, todo_id=todo_id, action_type="todo_update")
        return todo

    @app.delete("/api/todos/{todo_id}", status_code=204)
    async def delete_todo(todo_id: int, user_id: User) -> Response:
        _owned(todo_id, user_id)
        del todos[todo_id]
        log.info("Todo deleted", user_id=user_id, todo_id=todo_id, action_type="todo_delete")
        return Response(status_code=204)

    def _owned(todo_id: int, user_id: str) -> dict[str, object]:
        todo = todos.get(todo_id)
        if todo is None or todo["owner"] != user_id:
            log.warn("Todo not found", user_id=user_id, todo_id=todo_id)
            raise HTTPException(status_code=404, detail="no such todo")
        return todo

    @app.get("/api/error")
    async def error() -> None:
        # Not caught here: the middleware logs it with its stack trace, FastAPI answers 500.
        raise RuntimeError("Simulated failure in the demo backend")

    @log.measure("Report computed")
    def compute_report(n: int) -> int:
        return sum(i * i for i in range(n))

    @app.get("/api/slow")
    async def slow(ms: int = 800) -> dict[str, int]:
        with log.timer("Slow operation finished", delay_ms=ms, action_type="slow"):
            await asyncio.sleep(ms / 1000)
            total = compute_report(10_000)
        return {"delay_ms": ms, "report": total}

    return LogCollectorMiddleware(app, log, exclude_paths={"/health"})


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
