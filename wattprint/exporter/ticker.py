"""One fixed-interval loop for the exporter's polling threads (the GPU poller, the BMC node-power poller)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ..common.logs import kv, typed


def run_every(interval: float, step: Callable[[], Any], stop: threading.Event, clock: Callable[[], float],
              log: logging.Logger, what: str) -> None:
    """Call `step` every `interval` seconds of `clock` until `stop` is set. A step that raises is logged and the
    loop goes on (one bad poll must not end the polling); a step that overruns skips the missed ticks instead of
    bursting to catch up, so readings stay about one interval apart."""
    next_at = clock()
    while not stop.is_set():
        try:
            step()
        except Exception as exc:  # the loop outlives any one step's bug
            log.error(f"{what} failed", extra=kv(err=typed(exc)))
        next_at += interval
        now = clock()
        if next_at < now:
            next_at = now + interval
        stop.wait(next_at - now)
