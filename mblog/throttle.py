"""Small request budgets counted in Django's cache: at most `limit` hits per key in each
window of `window` seconds (fixed windows, like DRF's simple throttles, but shared by
every process through the Redis cache when REDIS_URL is set). A key's window starts at
its first hit, so no wall-clock boundary halves a burst.

    LOGIN_ACCOUNT = Budget("login_account")       # limit and window from settings.THROTTLES
    if LOGIN_ACCOUNT.spent(username): refuse(LOGIN_ACCOUNT.retry_after())
    LOGIN_ACCOUNT.hit(username)
"""

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


class Budget:
    def __init__(self, scope: str) -> None:
        self.scope = scope

    @property
    def limit(self) -> int:
        return settings.THROTTLES[self.scope][0]

    @property
    def window(self) -> int:
        return settings.THROTTLES[self.scope][1]

    def _key(self, key: str) -> str:
        # Hashed: usernames and addresses are arbitrary text, cache keys are not.
        return f"throttle:{self.scope}:{hashlib.sha256(str(key).encode()).hexdigest()[:32]}"

    def spent(self, key: str) -> bool:
        """Whether the budget of this window is used up (without using any)."""
        return self.limit > 0 and (cache.get(self._key(key)) or 0) >= self.limit

    def hit(self, key: str) -> bool:
        """Use one; False if there was none left (the hit still counts). A window starts
        at the first hit of a key and lasts `window` seconds."""
        if self.limit <= 0:  # 0 turns a budget off
            return True
        name = self._key(key)
        if cache.add(name, 0, self.window):
            cache.set(f"{name}:start", time.time(), self.window)
        try:
            count = cache.incr(name)
        except ValueError:  # expired between add and incr
            cache.add(name, 1, self.window)
            cache.set(f"{name}:start", time.time(), self.window)
            count = 1
        return count <= self.limit

    def retry_after(self, key: str | None = None) -> int:
        """Seconds until the key's window ends (the whole window if unknown)."""
        started = cache.get(f"{self._key(key)}:start") if key is not None else None
        if started is None:
            return self.window
        return max(1, math.ceil(started + self.window - time.time()))


def client_address(request: HttpRequest) -> str:
    """The client's address: daphne puts the proxy's X-Forwarded-For there behind nginx."""
    return request.META.get("REMOTE_ADDR") or "unknown"


def wait_words(seconds: int) -> str:
    return f"{seconds} seconds" if seconds < 120 else f"{math.ceil(seconds / 60)} minutes"
