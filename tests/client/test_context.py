"""Request and user context (log_collector/context.py): isolated per thread and per asyncio
task, nested user contexts merge and are restored on exit."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from log_collector import AsyncLogClient
from log_collector.client.context import (
    clear_request_context,
    clear_user_context,
    get_request_context,
    get_user_context,
    set_request_context,
    set_user_context,
    user_context,
)

pytestmark = pytest.mark.usefixtures("no_context")


def test_contexts_start_empty():
    assert (None, None) == (get_request_context(), get_user_context())


def test_set_replaces_and_clear_removes_the_request_context():
    set_request_context(path="/a", method="GET")
    set_request_context(path="/b")

    assert {"path": "/b"} == get_request_context()
    clear_request_context()
    assert None is get_request_context()


def test_set_replaces_and_clear_removes_the_user_context():
    set_user_context(user_id="u1", tenant="t")
    set_user_context(user_id="u2")

    assert {"user_id": "u2"} == get_user_context()
    clear_user_context()
    assert None is get_user_context()


def test_the_client_exposes_the_same_context_functions():
    AsyncLogClient.set_request_context(trace_id="t1")
    AsyncLogClient.set_user_context(user_id="u1")

    assert {"trace_id": "t1"} == AsyncLogClient.get_request_context()
    assert {"user_id": "u1"} == AsyncLogClient.get_user_context()


def test_each_thread_sees_only_its_own_contexts():
    barrier = threading.Barrier(8)

    def worker(n):
        set_request_context(request=n)
        set_user_context(user=n)
        barrier.wait()  # every thread has set its own before any reads
        return get_request_context(), get_user_context()

    set_request_context(request="main")
    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(worker, range(8)))

    assert [({"request": n}, {"user": n}) for n in range(8)] == seen
    assert {"request": "main"} == get_request_context()


def test_a_new_thread_does_not_inherit_the_callers_context():
    set_request_context(path="/main")
    seen = []

    thread = threading.Thread(target=lambda: seen.append(get_request_context()))
    thread.start()
    thread.join()

    assert [None] == seen


def test_concurrent_asyncio_tasks_each_see_their_own_contexts():
    async def handle(n, started, go):
        set_request_context(request=n)
        with user_context(user=n):
            started.append(n)
            await go.wait()  # every task has set its context before any reads
            return get_request_context(), get_user_context()

    async def main():
        go = asyncio.Event()
        started = []
        tasks = [asyncio.create_task(handle(n, started, go)) for n in range(10)]
        while len(started) < 10:
            await asyncio.sleep(0)
        go.set()
        return await asyncio.gather(*tasks), get_request_context()

    seen, after = asyncio.run(main())

    assert [({"request": n}, {"user": n}) for n in range(10)] == seen
    assert None is after


def test_a_task_starts_with_a_copy_of_its_creators_context_and_cannot_change_it():
    async def child():
        inherited = get_request_context()
        set_request_context(path="/child")
        return inherited

    async def main():
        set_request_context(path="/parent")
        inherited = await asyncio.create_task(child())
        return inherited, get_request_context()

    assert ({"path": "/parent"}, {"path": "/parent"}) == asyncio.run(main())


def test_nested_user_contexts_merge_and_each_exit_restores_the_previous_one():
    set_user_context(tenant="acme")
    seen = []

    with user_context(user_id="u1", role="admin"):
        seen.append(get_user_context())
        with user_context(role="viewer", session_id="s1"):
            seen.append(get_user_context())
        seen.append(get_user_context())
    seen.append(get_user_context())

    assert [
        {"tenant": "acme", "user_id": "u1", "role": "admin"},
        {"tenant": "acme", "user_id": "u1", "role": "viewer", "session_id": "s1"},
        {"tenant": "acme", "user_id": "u1", "role": "admin"},
        {"tenant": "acme"},
    ] == seen


def test_user_context_is_restored_when_the_block_raises():
    with pytest.raises(RuntimeError), user_context(user_id="u1"), user_context(user_id="u2"):
        raise RuntimeError("boom")

    assert None is get_user_context()


def test_user_context_never_changes_the_dict_it_extends():
    set_user_context(tenant="acme")
    outer = get_user_context()

    with user_context(user_id="u1"):
        pass

    assert {"tenant": "acme"} == outer
    assert outer is get_user_context()


def test_user_context_inside_a_thread_pool_job_does_not_leak_to_the_next_job():
    def job(n):
        before = get_user_context()
        with user_context(job=n):
            return before

    with ThreadPoolExecutor(1) as pool:
        befores = list(pool.map(job, range(5)))

    assert [None] * 5 == befores
