"""Prometheus metrics, on a registry of our own.

Defining a metric starts nothing; ``/metrics`` (ops.health) serves ``REGISTRY``.
Every component increments these directly: they are the program's counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = [
    "CARDS_RENDERED",
    "ERRORS",
    "FILE_ID_REUSED",
    "JOURNAL_SIZE",
    "LOCAL_STORE_ERRORS",
    "RECORDS_RECONCILED",
    "REDIS_DATA_LOST",
    "REDIS_PASSWORDLESS",
    "REDIS_RESTARTS",
    "REDIS_STATE_CHANGES",
    "REDIS_UP",
    "REGISTRY",
    "SENDS_RETRIED",
    "STORAGE_FAILBACKS",
    "STORAGE_FAILOVERS",
    "STORAGE_LATENCY",
    "STORAGE_MODE",
    "UPDATES_DEFERRED",
    "UPDATES_HANDLED",
    "UPDATES_RATE_LIMITED",
    "UPDATES_SHED",
    "UPDATES_SKIPPED",
]

REGISTRY = CollectorRegistry(auto_describe=True)

STORAGE_MODE = Gauge(
    "vechnost_storage_mode",
    "1 for the storage mode in use (redis or memory), 0 for the other",
    ["mode"],
    registry=REGISTRY,
)
REDIS_UP = Gauge("vechnost_redis_up", "1 when Redis answers PING", registry=REGISTRY)
REDIS_RESTARTS = Counter(
    "vechnost_redis_restarts_total", "Restarts of the Redis server we own", registry=REGISTRY
)
REDIS_DATA_LOST = Counter(
    "vechnost_redis_data_lost_total",
    "Times the Redis in use lost our data (the epoch marker vanished: FLUSHALL, empty server)",
    registry=REGISTRY,
)
REDIS_PASSWORDLESS = Gauge(
    "vechnost_redis_passwordless",
    "1 while the Redis in use answers without a password (anyone on the host can use it)",
    registry=REGISTRY,
)
REDIS_STATE_CHANGES = Counter(
    "vechnost_redis_state_changes_total",
    "Changes of the Redis lifecycle state, by the state entered",
    ["state"],
    registry=REGISTRY,
)
STORAGE_FAILOVERS = Counter(
    "vechnost_storage_failovers_total", "Switches from Redis to memory", registry=REGISTRY
)
STORAGE_FAILBACKS = Counter(
    "vechnost_storage_failbacks_total", "Switches from memory back to Redis", registry=REGISTRY
)
RECORDS_RECONCILED = Counter(
    "vechnost_storage_records_reconciled_total",
    "Journaled memory-mode writes replayed into Redis on failback",
    registry=REGISTRY,
)
JOURNAL_SIZE = Gauge(
    "vechnost_storage_journal_size", "Memory-mode writes waiting for Redis", registry=REGISTRY
)
LOCAL_STORE_ERRORS = Counter(
    "vechnost_storage_local_errors_total",
    "Failed commits of the local store (full or read-only disk, no permission); retried",
    registry=REGISTRY,
)
STORAGE_LATENCY = Histogram(
    "vechnost_storage_call_seconds",
    "Latency of storage calls as the bot sees them",
    ["op"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0),
    registry=REGISTRY,
)
UPDATES_HANDLED = Counter(
    "vechnost_updates_handled_total",
    "Telegram updates handled, by kind",
    ["kind"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "vechnost_errors_total", "Errors caught and answered, by where", ["where"], registry=REGISTRY
)
ERRORS.labels(where="handler")  # exported as 0 from the start, so that alerts see the series
CARDS_RENDERED = Counter(
    "vechnost_cards_rendered_total", "Card images rendered (cache misses)", registry=REGISTRY
)
FILE_ID_REUSED = Counter(
    "vechnost_card_file_id_reused_total",
    "Card photos sent by a stored Telegram file_id instead of an upload",
    registry=REGISTRY,
)
UPDATES_RATE_LIMITED = Counter(
    "vechnost_updates_rate_limited_total",
    "Updates refused by the per-user limit (checked in the process, before any storage call)",
    registry=REGISTRY,
)
UPDATES_SHED = Counter(
    "vechnost_updates_shed_total",
    "Updates dropped because their chat's queue was full (a flood)",
    registry=REGISTRY,
)
UPDATES_SKIPPED = Counter(
    "vechnost_updates_skipped_total",
    "Updates from getUpdates that could not be parsed and were skipped",
    registry=REGISTRY,
)
SENDS_RETRIED = Counter(
    "vechnost_telegram_sends_retried_total",
    "Bot API calls retried after Telegram's 429 Too Many Requests",
    registry=REGISTRY,
)
UPDATES_DEFERRED = Counter(
    "vechnost_updates_deferred_total",
    "Webhook updates answered 503 (Retry-After) because the storage was unavailable",
    registry=REGISTRY,
)
