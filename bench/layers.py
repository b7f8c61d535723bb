"""Core vs pub/sub channel layer, measured the way the process hub uses a layer.

One "hub" channel joins G groups (as a process with G signed-in users does), and a
second connection sends M group messages to random groups, as fast as it can, while
the hub receives. Prints messages/s received and the latency from send to receipt.

    .venv/bin/python bench/layers.py [--messages 5000] [--groups 1000] [--redis-url redis://127.0.0.1:6379/5]
"""

import argparse
import asyncio
import random
import statistics
import time

from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer


async def measure(make_layer, messages: int, groups: int) -> dict:
    receiver, sender = make_layer(), make_layer()
    channel = await receiver.new_channel("hub.")
    started = time.monotonic()
    for g in range(groups):
        await receiver.group_add(f"user.{g}", channel)
    join_seconds = time.monotonic() - started
    latencies = []

    async def receive():
        for _ in range(messages):
            message = await receiver.receive(channel)
            latencies.append(time.monotonic() - message["t"])

    task = asyncio.create_task(receive())
    await asyncio.sleep(0.2)
    rng = random.Random(1)
    started = time.monotonic()
    for k in range(messages):
        await sender.group_send(f"user.{rng.randrange(groups)}", {"type": "hub.message", "k": k, "t": time.monotonic()})
    sent_seconds = time.monotonic() - started
    await asyncio.wait_for(task, 120)
    received_seconds = time.monotonic() - started
    await receiver.flush()
    latencies.sort()
    return {
        "join_groups_s": round(join_seconds, 3),
        "send_per_s": round(messages / sent_seconds),
        "receive_per_s": round(messages / received_seconds),
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "latency_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    args = ap.parse_args()
    prefix = f"layerbench{random.randrange(10**6)}"
    hosts = [{"address": args.redis_url, "max_connections": 50}]
    layers = {
        "core": lambda: RedisChannelLayer(hosts=hosts, prefix=prefix + "c", capacity=100_000),
        "pubsub": lambda: RedisPubSubChannelLayer(hosts=hosts, prefix=prefix + "p"),
    }
    print(f"{args.messages} group messages to {args.groups} groups joined by one receiving channel")
    for name, make in layers.items():
        print(f"{name:7s} {asyncio.run(measure(make, args.messages, args.groups))}")


if __name__ == "__main__":
    main()
