"""Full-jitter exponential backoff for retryable store errors and bad downloads."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from ..errors import IntegrityError, StoreError
from .config import TransferConfig

T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, StoreError):
        return exc.retryable
    return isinstance(exc, IntegrityError)  # a corrupted download may be a transient fault


async def retrying(fn: Callable[[], Awaitable[T]], config: TransferConfig,
                   on_retry: Callable[[BaseException], None] | None = None) -> T:
    """Call ``fn`` until it succeeds, at most ``config.retries`` attempts in all."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await fn()
        except (StoreError, IntegrityError) as exc:
            if attempt >= config.retries or not is_retryable(exc):
                if isinstance(exc, StoreError):
                    exc.retryable = False  # used up here: a retry loop around this one gives up too
                raise
            if on_retry is not None:
                on_retry(exc)
            # the exponent capped: 0.1 * 2**1024 is past a float (SNAPDIR_RETRIES has no
            # maximum), and the cap is reached long before
            delay = random.uniform(0, min(config.backoff_cap,
                                          config.backoff_base * 2 ** min(attempt, 64)))
            await anyio.sleep(delay)
