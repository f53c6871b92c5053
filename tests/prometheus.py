"""Reading ``/metrics`` in tests."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


class Samples:
    """One scrape: sample values by name and labels."""

    def __init__(self, text: str) -> None:
        self.values = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def get(self, name: str, **labels: str) -> float:
        """The sample's value; 0 when absent (a labelled series not yet created)."""
        return self.values.get((name, tuple(sorted(labels.items()))), 0.0)

    def by_label(self, name: str, label: str) -> dict[str, float]:
        """Every sample of ``name`` by the value of its ``label`` (e.g. per worker ``pid``)."""
        return {
            dict(labels)[label]: value
            for (sample, labels), value in self.values.items()
            if sample == name and label in dict(labels)
        }

    def delta(self, before: Samples, name: str, **labels: str) -> float:
        return self.get(name, **labels) - before.get(name, **labels)


async def scrape(base_url: str) -> Samples:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{base_url}/metrics")
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain")
    return Samples(response.text)
