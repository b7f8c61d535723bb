"""Realtime delivery, independent of any domain: the channel-layer transport, the
per-process hub, the daphne fast path and the guarded consumer base.

Domains (inform, chat) build on it; nothing here imports them (tests/test_architecture.py).
"""
