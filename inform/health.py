import redis
from django.conf import settings


def channel_layer_ok() -> bool:
    """The in-process layer always answers; the Redis layer answers when Redis does."""
    if not settings.REDIS_URL:
        return True
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
