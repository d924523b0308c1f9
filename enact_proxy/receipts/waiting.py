"""Awaiting a receipt future from the event loop without a detour through the loop's self-pipe."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")


async def durable(future: Future[T]) -> T:
    """The result of a receipt future. In the sidecar the writer's answers are read by this very loop,
    so the future is resolved on its thread: waking the waiter directly saves ``asyncio.wrap_future``'s
    self-pipe write, read and extra loop turn on every receipt. From any other thread it falls back
    to ``call_soon_threadsafe``."""
    if future.done():
        return future.result()
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[T] = loop.create_future()
    loop_thread = threading.get_ident()

    def settle(done: Future[T]) -> None:
        if waiter.cancelled():
            return
        exc = done.exception()
        if exc is not None:
            waiter.set_exception(exc)
        else:
            waiter.set_result(done.result())

    def wake(done: Future[T]) -> None:
        if threading.get_ident() == loop_thread:
            settle(done)
        else:
            loop.call_soon_threadsafe(settle, done)

    future.add_done_callback(wake)
    return await waiter
