"""The SDK's event loop, in a daemon thread of its own.

Every client's I/O runs on this loop: the embedded server's database engine must stay on one
loop, and it lets one async implementation serve both APIs. ``run_sync`` is how blocking
code (``Client``, the views' plain methods) waits for it; ``run_async`` is how coroutines on
another loop (``AsyncClient`` used from the user's loop) await it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def loop() -> asyncio.AbstractEventLoop:
    """The SDK loop, started on first use."""
    global _loop, _thread
    with _lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            _thread = threading.Thread(
                target=_loop.run_forever, name="runview-sdk-loop", daemon=True
            )
            _thread.start()
        return _loop


def on_loop() -> bool:
    return threading.current_thread() is _thread


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on the SDK loop and wait for its result in this thread."""
    if on_loop():
        coroutine.close()
        raise RuntimeError(
            "a blocking runview call was made on the SDK's own event loop; use the async API"
        )
    return asyncio.run_coroutine_threadsafe(coroutine, loop()).result()


async def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Await ``coroutine`` on the SDK loop from whichever loop is running this."""
    if on_loop():
        return await coroutine
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, loop()))
