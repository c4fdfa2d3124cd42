"""Client-side rate limiting per provider: requests and tokens per window (SPEC §4.2).

A sliding-window log rather than a refilling bucket: a request may go when the requests (and
estimated tokens) sent in the last `period` seconds, itself included, stay within the limits.
That is the strictest reading of "30 requests per minute" — it never trips a server that counts
over a rolling window, a fixed window or a token bucket — and still uses the whole budget: a
burst up to the limit at once, then one request each time an old one leaves the window. The
window is stretched by SAFETY (2 %, at least MIN_SAFETY_SECONDS) to absorb the time between
our clock and the server's (client overhead, connection set-up, network jitter): 30 rpm sends
≤ 30 requests in any 61.2 s, i.e. 98 % of the limit.

The window state (`RateWindow`) is plain data kept for a whole build, so successive produce()
calls (one per dependency level) share one budget; the asyncio lock is per event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

SAFETY = 0.02
MIN_SAFETY_SECONDS = 0.1


class RateLimitWaitTooLong(Exception):
    def __init__(self, wait: float):
        super().__init__(f"would wait {wait:.1f}s")
        self.wait = wait


class RateWindow:
    def __init__(self, rpm: int | None = None, tpm: int | None = None, period: float = 60.0,
                 safety: float = SAFETY):
        self.rpm = rpm
        self.tpm = tpm
        self.window = period + max(period * safety, MIN_SAFETY_SECONDS)
        self.sent: deque[tuple[float, int]] = deque()
        self.tokens_in_window = 0
        self.blocked_until = 0.0  # set by a 429's retry-after: nobody sends before this

    def _prune(self, now: float) -> None:
        while self.sent and self.sent[0][0] + self.window <= now:
            _, tokens = self.sent.popleft()
            self.tokens_in_window -= tokens

    def blocked_for(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        return max(0.0, self.blocked_until - now)

    def delay(self, tokens: int, now: float) -> float:
        """Seconds until a request estimated at `tokens` may be sent (0 = now)."""
        self._prune(now)
        waits = [self.blocked_until - now]
        if self.rpm is not None and len(self.sent) >= self.rpm:
            waits.append(self.sent[len(self.sent) - self.rpm][0] + self.window - now)
        if self.tpm is not None and self.sent and self.tokens_in_window + tokens > self.tpm:
            if tokens >= self.tpm:  # bigger than the whole budget: send it alone
                waits.append(self.sent[-1][0] + self.window - now)
            else:
                freed = 0
                for t, n in self.sent:
                    freed += n
                    if self.tokens_in_window - freed + tokens <= self.tpm:
                        waits.append(t + self.window - now)
                        break
        return max(0.0, *waits)

    def record(self, tokens: int, now: float) -> None:
        self.sent.append((now, tokens))
        self.tokens_in_window += tokens

    def pause(self, seconds: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.blocked_until = max(self.blocked_until, now + max(0.0, seconds))


class RateLimiter:
    """The async gate in front of a RateWindow. Waiters go in FIFO order (asyncio.Lock is fair)."""

    def __init__(self, window: RateWindow):
        self.window = window
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: int, max_block: float | None = None) -> None:
        """Wait for a slot. Raises RateLimitWaitTooLong when a 429 pause exceeds `max_block`."""
        async with self._lock:
            while True:
                now = time.monotonic()
                blocked = self.window.blocked_for(now)
                if max_block is not None and blocked > max_block:
                    raise RateLimitWaitTooLong(blocked)
                wait = self.window.delay(tokens, now)
                if wait <= 0:
                    self.window.record(tokens, now)
                    return
                await asyncio.sleep(wait)
