import redis
from django.conf import settings


def channel_layer_ok() -> bool:
    """The in-process layer always answers; the Redis layer answers when every one of its
    servers does (one down loses the pushes of the groups on it)."""
    return all(_pings(url.strip()) for url in settings.REDIS_URL.split(",") if url.strip())


def _pings(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
