"""vLLM's Prometheus metrics: lean recording on the request path, exposition at scrape time.

The engine reports what happened to a recorder made of plain counters and bucket arrays (no
locks: one event loop per rank); a custom collector turns them — or the scenario's fake
values — into metric families when ``/metrics`` is scraped. Metrics observe the engine; they
never steer it.
"""
