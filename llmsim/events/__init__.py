"""KV-cache events on ZMQ, in vLLM's wire format: a batching publisher and its replay server.

The engine reports block changes to a ``KVEventPublisher``; events observe the KV cache and
never steer it, and publishing never blocks the event loop.
"""

from llmsim.events.publisher import KVEventPublisher

__all__ = ["KVEventPublisher"]
