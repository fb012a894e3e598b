"""Prometheus metrics of a worker process, in the text format ``/metrics`` serves.

Nothing is counted twice: the worker already keeps its counters (:class:`WorkerStats`), so
:class:`WorkerCollector` reads them when Prometheus scrapes, together with the queue depths it
is handed. Provider requests are measured where they are sent, in the embedders' base class,
which reports every request and retry of the process to :class:`ProviderMetrics`.

Exposed (``vectorizer_id`` and ``provider`` are labels)::

    pgai_vectorizer_rows_processed_total{vectorizer_id}     rows embedded and written
    pgai_vectorizer_chunks_embedded_total{vectorizer_id}    chunks embedded and written
    pgai_vectorizer_errors_total{vectorizer_id}             batches that failed
    pgai_vectorizer_queue_pending{vectorizer_id}            queued rows (capped, see status.py)
    pgai_vectorizer_queue_scrape_success                    0 when the depths could not be read
    pgai_worker_batches_total                               batches done, all vectorizers
    pgai_worker_failed_rows_total                           rows that failed on their own
    pgai_worker_rows_moved_to_failed_queue_total
    pgai_worker_tokens_sent_total                           estimated, 4 bytes a token
    pgai_worker_coroutines / pgai_worker_coroutines_busy    running / inside a batch now
    pgai_provider_request_duration_seconds{provider}        histogram
    pgai_provider_requests_total{provider,status}           status: HTTP code or "no_response"
    pgai_provider_retries_total{provider,reason}            reason: rate_limited or error
    pgai_worker_info{version}, process_*                    the process: CPU, memory, files
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from pgai import __version__
from pgai.vectorizer.embedders.base import add_provider_observer
from pgai.vectorizer.worker import WorkerStats

#: The content type of the classic Prometheus text format that :func:`render` produces.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Provider latencies, from a fast local model server to a slow batch on a busy API.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class ProviderMetrics:
    """Latency, status codes and retries of every provider request of the process."""

    def __init__(self) -> None:
        self._registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "pgai_provider_request_duration_seconds",
            "Duration of HTTP requests to embedding providers.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=self._registry,
        )
        self.requests = Counter(
            "pgai_provider_requests",
            "HTTP requests to embedding providers, by response status.",
            ["provider", "status"],
            registry=self._registry,
        )
        self.retries = Counter(
            "pgai_provider_retries",
            "Provider requests sent again after a failure.",
            ["provider", "reason"],
            registry=self._registry,
        )

    def request_finished(self, provider: str, seconds: float, status: int | None) -> None:
        """Record one request (the embedders call this for every request they send)."""
        self.latency.labels(provider).observe(seconds)
        self.requests.labels(provider, "no_response" if status is None else str(status)).inc()

    def request_retried(self, provider: str, reason: str) -> None:
        """Record one retry."""
        self.retries.labels(provider, reason).inc()

    def collect(self) -> Iterable[Metric]:
        """The provider metrics, for a registry that collects from this object."""
        return self._registry.collect()


_provider_metrics: ProviderMetrics | None = None


def provider_metrics() -> ProviderMetrics:
    """The process's provider metrics, observing every embedder from the first call on."""
    global _provider_metrics
    if _provider_metrics is None:
        _provider_metrics = ProviderMetrics()
        add_provider_observer(_provider_metrics)
    return _provider_metrics


class WorkerCollector:
    """Reads a worker's :class:`WorkerStats` and the last queue depths at scrape time."""

    def __init__(self, stats: Callable[[], WorkerStats]) -> None:
        self._stats = stats
        #: Pending rows per vectorizer id, as last read; None when the read failed.
        self.queue_depths: Mapping[int, int] | None = None

    def collect(self) -> Iterable[Metric]:
        """The worker's metrics, from its counters as they are now."""
        stats = self._stats()
        info = GaugeMetricFamily("pgai_worker_info", "The pgai worker.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info

        yield _per_vectorizer(
            CounterMetricFamily(
                "pgai_vectorizer_rows_processed",
                "Source rows embedded and written.",
                labels=["vectorizer_id"],
            ),
            stats.per_vectorizer_rows,
        )
        yield _per_vectorizer(
            CounterMetricFamily(
                "pgai_vectorizer_chunks_embedded",
                "Chunks embedded and written.",
                labels=["vectorizer_id"],
            ),
            stats.per_vectorizer_chunks,
        )
        yield _per_vectorizer(
            CounterMetricFamily(
                "pgai_vectorizer_errors",
                "Batches that failed.",
                labels=["vectorizer_id"],
            ),
            stats.per_vectorizer_errors,
        )
        scraped = GaugeMetricFamily(
            "pgai_vectorizer_queue_scrape_success",
            "1 when the queue depths below were read from the database at this scrape.",
        )
        scraped.add_metric([], 0 if self.queue_depths is None else 1)
        yield scraped
        yield _per_vectorizer(
            GaugeMetricFamily(
                "pgai_vectorizer_queue_pending",
                "Rows waiting in the vectorizer's queue (capped at 10001).",
                labels=["vectorizer_id"],
            ),
            self.queue_depths or {},
        )

        totals = {
            "pgai_worker_batches": ("Batches processed successfully.", stats.batches),
            "pgai_worker_tokens_sent": (
                "Tokens sent to providers (estimated at 4 bytes of UTF-8 a token).",
                stats.tokens,
            ),
            "pgai_worker_failed_rows": ("Rows that failed on their own.", stats.failed_rows),
            "pgai_worker_rows_moved_to_failed_queue": (
                "Rows moved to a failed queue after their last attempt.",
                stats.moved_to_failed_queue,
            ),
        }
        for name, (documentation, value) in totals.items():
            yield CounterMetricFamily(name, documentation, value=value)
        yield GaugeMetricFamily(
            "pgai_worker_coroutines", "Worker coroutines running.", value=stats.coroutines
        )
        yield GaugeMetricFamily(
            "pgai_worker_coroutines_busy",
            "Worker coroutines inside a batch right now.",
            value=stats.busy,
        )


def _per_vectorizer(
    family: GaugeMetricFamily | CounterMetricFamily, values: Mapping[int, int]
) -> Metric:
    for vectorizer_id, value in sorted(values.items()):
        family.add_metric([str(vectorizer_id)], value)
    return family


class WorkerMetrics:
    """The ``/metrics`` page of one worker: its counters, the provider metrics of the process
    and the process's own (CPU, memory, open files)."""

    def __init__(self, stats: Callable[[], WorkerStats]) -> None:
        self.worker = WorkerCollector(stats)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.worker)
        self.registry.register(provider_metrics())
        self.registry.register(ProcessCollector(registry=None))

    def render(self, queue_depths: Mapping[int, int] | None) -> bytes:
        """The metrics in the Prometheus text format, with these queue depths (None: they
        could not be read)."""
        self.worker.queue_depths = queue_depths
        return generate_latest(self.registry)
