"""Prometheus metrics of hsmgate, served at ``GET /metrics`` (text format, prometheus-client).

=========================================  =====================================================
``hsmgate_http_requests_total``            requests by method, route template and status
``hsmgate_http_request_duration_seconds``  latency histogram by method and route template
``hsmgate_key_operations_total``           key operations by operation, key family, algorithm,
                                           outcome (counted by the key-use gate)
``hsmgate_audit_queue_depth``              audit records submitted, not yet committed
``hsmgate_audit_commit_seconds``           duration of one group commit of the audit chain
``hsmgate_audit_records_total``            audit records by outcome of their commit
``hsmgate_pkcs11_sessions``                PKCS#11 sessions of a partition's pool: open, in use
``hsmgate_pkcs11_session_waiters``         threads waiting for a session of the pool
``hsmgate_pkcs11_pool_size``               the pool's size (HSMGATE_PKCS11_POOL_SIZE)
``hsmgate_ska_requests``                   SKA requests by partition and status (read from the
                                           state database when scraped)
=========================================  =====================================================

Every label value comes from a closed set (route templates, the algorithm registries, partition
names, TSB statuses), so callers cannot grow the number of series.

Several workers (``hsmgate serve --workers N``) use prometheus-client's multiprocess mode: the
supervisor points ``PROMETHEUS_MULTIPROC_DIR`` at an empty directory before the workers start
(:func:`prepare_multiprocess_dir`), each worker writes its values to files there, and a scrape —
answered by whichever worker the kernel picks — adds up the files of all of them. Gauges of live
state count only running workers (``livesum``); a worker that exits cleanly removes its files.

The objects here implement, by their method names, the small observer protocols of the layers
they watch (``domain/metrics.py`` ``OperationCounter``, ``store/audit.py`` ``AuditObserver``,
``hsm/pkcs11/partition.py`` ``PoolObserver``): those layers never import Prometheus.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Request latency buckets (seconds): a soft-token signature takes well under a millisecond.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
#: A path parameter's converter in a route template (``{keyName:path}``): not shown in labels.
_CONVERTER = re.compile(r":[A-Za-z_]+\}")
#: HTTP methods counted by name; any other is counted as ``other``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


#: Whether this process writes its values to ``PROMETHEUS_MULTIPROC_DIR``: prometheus-client decides
#: when it is imported (just above), so this is read at the same moment, not later.
MULTIPROCESS = bool(os.environ.get(MULTIPROC_ENV))


def prepare_multiprocess_dir() -> Path:
    """Before the workers start: an empty directory for their values, named in the environment the
    workers inherit. An operator's ``PROMETHEUS_MULTIPROC_DIR`` is used (and emptied of the last
    run's files), else a new temporary directory (remove it with :func:`remove_multiprocess_dir`)."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        return directory
    directory = Path(tempfile.mkdtemp(prefix="hsmgate-metrics-"))
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


def remove_multiprocess_dir(directory: Path) -> None:
    """Remove a directory :func:`prepare_multiprocess_dir` made (not an operator's)."""
    if directory.name.startswith("hsmgate-metrics-"):
        shutil.rmtree(directory, ignore_errors=True)
    if os.environ.get(MULTIPROC_ENV) == str(directory):
        del os.environ[MULTIPROC_ENV]


class SkaRequestCollector(Collector):
    """``hsmgate_ska_requests``: counted in the state database when scraped, so every worker and
    every instance on the database report the same numbers."""

    def __init__(self, counts: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("hsmgate_ska_requests", "SKA requests by partition and status",
                                   labels=["partition", "status"])
        for (partition, status), count in sorted(self._counts().items()):
            family.add_metric([partition, status], count)
        yield family


class RequestMetrics:
    """HTTP request counts and latencies; :meth:`observe` is called once per request by
    ``api/metrics.py``'s middleware. The labelled children of each (method, route, status) are kept
    in a dict, so a request costs one dict lookup, an increment and an observation."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests = Counter("hsmgate_http_requests", "HTTP requests by method, route template and status",
                                 ["method", "route", "status"], registry=registry)
        self._latency = Histogram("hsmgate_http_request_duration_seconds",
                                  "Time from the request's arrival to the end of its answer, by method and route "
                                  "template", ["method", "route"], buckets=LATENCY_BUCKETS, registry=registry)
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        children = self._children.get((method, route, status))
        if children is None:  # first time only: the label values (``/v1/key/{keyName}/attributes``)
            shown, template = method if method in METHODS else "other", _CONVERTER.sub("}", route)
            children = self._children[(method, route, status)] = (
                self._requests.labels(shown, template, str(status)), self._latency.labels(shown, template))
        children[0].inc()
        children[1].observe(seconds)


class OperationMetrics:
    """``hsmgate_key_operations_total``: a ``domain.metrics.OperationCounter``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._operations = Counter("hsmgate_key_operations",
                                   "Key operations by operation, key family, algorithm and outcome",
                                   ["operation", "key_type", "algorithm", "outcome"], registry=registry)
        self._children: dict[tuple[str, str, str, str], Counter] = {}

    def count(self, operation: str, key_type: str, algorithm: str, outcome: str, n: int = 1) -> None:
        key = (operation, key_type, algorithm, outcome)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._operations.labels(*key)
        child.inc(n)


class AuditMetrics:
    """Queue depth and group commits of the audit chain: a ``store.audit.AuditObserver``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._depth = Gauge("hsmgate_audit_queue_depth", "Audit records submitted and not yet committed",
                            registry=registry, multiprocess_mode="livesum")
        self._seconds = Histogram("hsmgate_audit_commit_seconds",
                                  "Duration of one group commit (one transaction) of an audit chain",
                                  buckets=COMMIT_BUCKETS, registry=registry)
        records = Counter("hsmgate_audit_records", "Audit records by outcome of their commit", ["outcome"],
                          registry=registry)
        self._committed, self._failed = records.labels("committed"), records.labels("failed")

    def queued(self, records: int) -> None:
        self._depth.inc(records)

    def committed(self, records: int, seconds: float) -> None:
        self._depth.dec(records)
        self._seconds.observe(seconds)
        self._committed.inc(records)

    def failed(self, records: int) -> None:
        self._depth.dec(records)
        self._failed.inc(records)


class PoolMetrics:
    """PKCS#11 session pools, labelled by partition: ``pool(name)`` is a ``PoolObserver``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._sessions = Gauge("hsmgate_pkcs11_sessions", "PKCS#11 sessions of a partition's pool by state",
                               ["partition", "state"], registry=registry, multiprocess_mode="livesum")
        self._waiters = Gauge("hsmgate_pkcs11_session_waiters", "Threads waiting for a session of the pool",
                              ["partition"], registry=registry, multiprocess_mode="livesum")
        self._size = Gauge("hsmgate_pkcs11_pool_size", "Sessions a partition's pool may open (per process)",
                           ["partition"], registry=registry, multiprocess_mode="livemax")

    def pool(self, partition: str) -> PartitionPoolMetrics:
        return PartitionPoolMetrics(self._sessions.labels(partition, "open"), self._sessions.labels(partition, "in_use"),
                                    self._waiters.labels(partition), self._size.labels(partition))


class PartitionPoolMetrics:
    """One partition's pool gauges (a ``hsm.pkcs11.pool.PoolObserver``)."""

    def __init__(self, open_: Gauge, in_use: Gauge, waiters: Gauge, size: Gauge) -> None:
        self._open, self._in_use, self._waiters, self._size = open_, in_use, waiters, size

    def pool_size(self, size: int) -> None:
        self._size.set(size)

    def sessions(self, open_: int, in_use: int, waiting: int) -> None:
        self._open.set(open_)
        self._in_use.set(in_use)
        self._waiters.set(waiting)


class Metrics:
    """The metrics of one hsmgate process (:meth:`render` answers ``GET /metrics``)."""

    def __init__(self) -> None:
        self.multiprocess = MULTIPROCESS
        self.registry = CollectorRegistry()
        self.requests = RequestMetrics(self.registry)
        self.operations = OperationMetrics(self.registry)
        self.audit = AuditMetrics(self.registry)
        self.pools = PoolMetrics(self.registry)
        self._ska: SkaRequestCollector | None = None

    def count_ska_requests(self, counts: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        """Serve ``hsmgate_ska_requests`` from ``counts`` (a query of the state database)."""
        self._ska = SkaRequestCollector(counts)
        if not self.multiprocess:
            self.registry.register(self._ska)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """(exposition, its content type): this process's values, or with several workers all of
        theirs, in the format the scraper's ``Accept`` header asks for (Prometheus text 0.0.4 by
        default, OpenMetrics on request: prometheus-client's ``choose_encoder``)."""
        encode, content_type = choose_encoder(accept or "")
        if not self.multiprocess:
            return encode(self.registry), content_type
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        if self._ska is not None:
            registry.register(self._ska)
        return encode(registry), content_type

    def process_exiting(self) -> None:
        """A worker shutting down: its live gauges (queue depth, sessions) stop counting."""
        if self.multiprocess:
            mark_process_dead(os.getpid())
