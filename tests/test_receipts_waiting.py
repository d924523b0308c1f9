"""enact_proxy/receipts/waiting.py: awaiting receipt futures resolved on the loop's thread or any other."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

import pytest

from enact_proxy.receipts.store import ReceiptError
from enact_proxy.receipts.waiting import durable


def test_a_future_resolved_on_another_thread_wakes_the_waiter() -> None:
    async def main() -> str:
        future: Future[str] = Future()
        threading.Timer(0.05, future.set_result, args=("signed",)).start()
        return await durable(future)

    assert asyncio.run(main()) == "signed"


def test_a_future_resolved_on_the_loop_thread_wakes_the_waiter_without_a_threadsafe_call() -> None:
    async def main() -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        calls = 0
        original = loop.call_soon_threadsafe

        def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            return original(*args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        future: Future[str] = Future()
        loop.call_later(0.01, future.set_result, "signed")
        return await durable(future), calls

    assert asyncio.run(main()) == ("signed", 0)


def test_a_failed_receipt_raises_in_the_waiter_and_a_done_future_returns_at_once() -> None:
    async def main() -> str:
        failed: Future[str] = Future()
        asyncio.get_running_loop().call_later(0.01, failed.set_exception, ReceiptError("journal write failed"))
        with pytest.raises(ReceiptError, match="journal write failed"):
            await durable(failed)
        done: Future[str] = Future()
        done.set_result("already")
        return await durable(done)

    assert asyncio.run(main()) == "already"


def test_a_cancelled_waiter_ignores_the_late_result() -> None:
    async def main() -> None:
        future: Future[str] = Future()
        task = asyncio.ensure_future(durable(future))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        future.set_result("late")  # must not raise InvalidStateError inside the callback
        await asyncio.sleep(0)

    asyncio.run(main())
