"""``--out prometheus=[HOST:]PORT``: the run's metrics on ``/metrics`` while it goes.

Names as k6's Prometheus output has them (``k6_`` + the metric; counters ``_total``; rates
``_rate``; time trends as histograms in seconds, ``k6_http_req_duration_seconds``), every series'
tags (scenario, kind, status, method, name, …) as labels. The snapshot is built once per tick
from the registry on the run's loop (never per request, never per scrape); a scrape, on
prometheus_client's own thread, reads the last snapshot.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scfleet_core.errors import ConfigError
from simulator.metrics.histogram import bucket_bounds
from simulator.metrics.registry import Counter, Gauge, Rate, Registry, Tags, Trend

if TYPE_CHECKING:
    from simulator.run.runner import Environment

#: Histogram bucket upper bounds for time trends, seconds (+Inf is added by the exposition).
TIME_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
#: Bounds for trends that are not times (their own unit).
VALUE_BUCKETS = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8)
_LABEL = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class Endpoint:
    """``[HOST:]PORT`` to listen on; loopback unless a host is given."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_endpoint(text: str, *, default_port: int | None = None) -> Endpoint:
    """``PORT``, ``HOST:PORT`` or ``[V6]:PORT`` (ValueError with a one-line reason)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port and default_port is not None:
        port = str(default_port)
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: expected [HOST:]PORT with PORT 0-65535")
    return Endpoint(host, int(port))


def _label(key: str) -> str:
    name = _LABEL.sub("_", key)
    return name if not name[:1].isdigit() else "_" + name


@dataclass(frozen=True)
class _Family:
    """One metric family of a snapshot: ``(kind, name, help, [(labels, value)])``."""

    kind: str  # "counter" | "gauge" | "histogram"
    name: str
    help: str
    samples: tuple[tuple[Tags, Any], ...]


class PrometheusOut:
    """The exporter: bound at construction (a port in use fails before the run starts),
    fed by :meth:`tick` from the run's tick hooks, closed by :meth:`close`."""

    def __init__(self, endpoint: Endpoint, *, source: str = "--out prometheus=") -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        self._families: tuple[_Family, ...] = ()
        self._closed = False
        self._buckets: dict[tuple[int, bool], int] = {}  # HDR bucket index -> bound index
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        try:
            self._server, self._thread = start_http_server(
                endpoint.port, addr=endpoint.host, registry=registry
            )
        except OSError as exc:
            why = exc.strerror or str(exc)
            raise ConfigError(f"cannot listen on {endpoint}: {why}", source=source) from None
        self.endpoint = Endpoint(endpoint.host, int(self._server.server_address[1]))
        self.url = f"http://{_url_host(self.endpoint.host)}:{self.endpoint.port}/metrics"

    # prometheus_client's Collector protocol: called on the server's thread per scrape
    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        for f in self._families:  # one reference read: a tick swaps the whole tuple
            keys = sorted({k for tags, _ in f.samples for k, _ in tags})
            labels = [_label(k) for k in keys]
            fam: Any
            if f.kind == "counter":
                fam = CounterMetricFamily(f.name, f.help, labels=labels)
            elif f.kind == "gauge":
                fam = GaugeMetricFamily(f.name, f.help, labels=labels)
            else:
                fam = HistogramMetricFamily(f.name, f.help, labels=labels)
            for tags, value in f.samples:
                have = dict(tags)
                values = [have.get(k, "") for k in keys]
                if f.kind == "histogram":
                    buckets, total = value
                    fam.add_metric(values, buckets, total)
                else:
                    fam.add_metric(values, value)
            yield fam

    def describe(self) -> list[Any]:
        return []

    def tick(self, env: Environment, point: dict[str, Any] | None = None) -> None:
        """A tick hook (``Environment.tick_hooks``): snapshot the registry."""
        self.update(env.registry)

    def update(self, reg: Registry) -> None:
        reg.flush()
        grouped: dict[str, list[tuple[Tags, Any]]] = {}
        kinds: dict[str, tuple[str, str]] = {}
        for (name, tags), s in list(reg.series.items()):
            is_time = reg.contains.get(name) == "time"
            value: Any
            if isinstance(s, Counter):
                key, kind, value = f"k6_{name}", "counter", s.value
            elif isinstance(s, Rate):
                key, kind, value = f"k6_{name}_rate", "gauge", s.rate
            elif isinstance(s, Gauge):
                key, kind, value = f"k6_{name}", "gauge", s.value
            elif isinstance(s, Trend):
                key = f"k6_{name}_seconds" if is_time else f"k6_{name}"
                kind, value = "histogram", self._histogram(s, is_time)
            else:  # pragma: no cover - the registry has four kinds
                continue
            kinds[key] = (kind, f"k6 {reg.types.get(name, '')} {name}")
            grouped.setdefault(key, []).append((tags, value))
        self._families = tuple(
            _Family(kinds[k][0], k, kinds[k][1], tuple(v)) for k, v in sorted(grouped.items())
        )

    def final(self, reg: Registry) -> None:
        """The run is over: serve its final values (the last partial second and, with workers,
        every worker's share included), the figures summary.json holds."""
        self.update(reg)

    def _histogram(self, t: Trend, is_time: bool) -> tuple[list[tuple[str, float]], float]:
        bounds: Sequence[float] = TIME_BUCKETS if is_time else VALUE_BUCKETS
        scale = 1e6 if is_time else 1e3  # the histogram holds µs / thousandths
        counts = [0] * (len(bounds) + 1)
        cache = self._buckets
        for idx, n in t.hist.counts.items():
            slot = cache.get((idx, is_time))
            if slot is None:
                slot = cache[(idx, is_time)] = bisect_left(bounds, bucket_bounds(idx)[1] / scale)
            counts[slot] += n
        out, run = [], 0
        for bound, c in zip((*bounds, float("inf")), counts, strict=True):
            run += c
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(run)))
        return out, t.hist.total / scale

    def close(self) -> None:
        """Stop listening (a scrape after this is refused); idempotent. A scrape in flight is
        on a daemon thread and never holds this up."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
