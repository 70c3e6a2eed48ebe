"""Scraping ``/metrics`` and reading it with prometheus_client's own text parser."""

from __future__ import annotations

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.support import RunningServer


def scrape(server: RunningServer) -> dict[str, Metric]:
    """Every metric family of the server, by name."""
    response = httpx.get(f"{server.base_url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def value(families: dict[str, Metric], name: str, suffix: str = "", **labels: str) -> float:
    """The value of one sample (``suffix`` e.g. ``_total``, ``_count``, ``_sum``)."""
    family = families[name]
    for sample in family.samples:
        if sample.name == name + suffix and all(
            sample.labels.get(k) == v for k, v in labels.items()
        ):
            return float(sample.value)
    raise KeyError(f"{name}{suffix} {labels}")


def buckets(families: dict[str, Metric], name: str) -> list[tuple[str, float]]:
    """A histogram's ``(le, cumulative count)`` pairs."""
    return [(s.labels["le"], s.value) for s in families[name].samples if s.name == name + "_bucket"]
