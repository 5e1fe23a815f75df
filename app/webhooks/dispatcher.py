"""Turning outbox rows into signed HTTP deliveries.

Three steps, in short transactions, so no transaction is ever open while a request is on the wire
(the worker runs all three in one transaction per round, :func:`cycle`):

1. **Fan-out** (:func:`dispatch_outbox`): undispatched outbox rows, in id order, become one pending
   delivery per enabled endpoint that subscribes to the event; the body is rendered here, once, and the
   row is stamped ``dispatched_at``.
2. **Claim** (:func:`claim_due`): due deliveries get a lease (``webhook_timeout`` + 15 s) and a numbered
   attempt row. PostgreSQL uses ``FOR UPDATE SKIP LOCKED`` so workers on several nodes split the work;
   SQLite's ``BEGIN IMMEDIATE`` already lets one writer in at a time.
3. **Record** (:func:`record_results`): the attempt's outcome, then the delivery's next state, and the
   endpoint's failure streak (which may disable it).

:class:`Deliverer` sends the claimed attempts concurrently (bounded overall and per endpoint), so one
slow or dead receiver only ever occupies its own few slots. A worker that dies mid-send leaves its
lease behind; when it runs out the delivery is claimed again and sent with the same webhook-id, so
delivery is at-least-once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session
from sqlmodel import SQLModel, col

from app.audit.models import OutboxEvent
from app.clock import clock
from app.config import Settings
from app.db import Database
from app.webhooks import service
from app.webhooks.models import (
    DELIVERED,
    FAILED,
    PENDING,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    event_matches,
)
from app.webhooks.sender import AttemptResult, DeliveryClient, create_client, next_delay, send_attempt
from app.webhooks.signing import build_headers

log = logging.getLogger("claimdesk.webhooks")

OUTBOX_BATCH = 500
# After a fan-out fails, the worker records and claims without it for this long before trying again.
FAN_OUT_RETRY_SECONDS = 2.0
LEASE_MARGIN_SECONDS = 15.0
# The defaults of CLAIMDESK_WEBHOOK_CONCURRENCY and ..._PER_ENDPOINT, for callers without settings' say.
MAX_CONCURRENCY: int = Settings.model_fields["webhook_concurrency"].default
PER_ENDPOINT_CONCURRENCY: int = Settings.model_fields["webhook_concurrency_per_endpoint"].default
CLAIM_UNION_CHUNK = 100
EXCERPT_CHARS = 1024
ERROR_CHARS = 500

T = TypeVar("T")

# The tables, for the Core statements of the hot path.
D = SQLModel.metadata.tables["webhook_deliveries"]
A = SQLModel.metadata.tables["webhook_delivery_attempts"]
E = SQLModel.metadata.tables["webhook_endpoints"]
O: sa.Table = OutboxEvent.__table__  # type: ignore[attr-defined]  # noqa: E741


# The hot path's statements are built once, with bind parameters: constructing a statement and
# computing its cache key cost more CPU than running it. Each ``*_PG`` twin adds PostgreSQL's row
# locks. Parameter names must not be column names (SQLAlchemy keeps those for SET clauses).
_IDS: sa.BindParameter[Any] = sa.bindparam("ids", expanding=True)


def _due() -> list[Any]:
    """A delivery that may be claimed at ``:now``."""
    return [
        D.c.state == PENDING,
        D.c.next_attempt_at <= sa.bindparam("now"),
        sa.or_(D.c.leased_until.is_(None), D.c.leased_until <= sa.bindparam("now")),
    ]


_UNDISPATCHED = (
    sa.select(O.c.id, O.c.type, O.c.claim_id, O.c.payload, O.c.created_at)
    .where(O.c.dispatched_at.is_(None))
    .order_by(O.c.id)
    .limit(sa.bindparam("batch", type_=sa.Integer))
)
_UNDISPATCHED_PG = _UNDISPATCHED.with_for_update(skip_locked=True)
_SUBSCRIBERS = sa.select(E.c.id, E.c.events, E.c.format).where(E.c.enabled.is_(True))
_INSERT_DELIVERIES = sa.insert(D)
_MARK_DISPATCHED = sa.update(O).where(O.c.id.in_(_IDS)).values(dispatched_at=sa.bindparam("now"))

_SIGNERS = sa.select(E.c.id, E.c.url, E.c.secret, E.c.previous_secret, E.c.previous_secret_expires_at).where(
    E.c.enabled.is_(True)
)
_LOCK_DUE = (
    sa.select(D.c.id, D.c.endpoint_id, D.c.msg_id, D.c.body, D.c.attempts, D.c.leased_until)
    .where(D.c.id.in_(_IDS), *_due())
    .order_by(D.c.id)
)
_LOCK_DUE_PG = _LOCK_DUE.with_for_update(skip_locked=True, key_share=True)
_INTERRUPT_STALE = (
    sa.update(A)
    .where(A.c.delivery_id.in_(_IDS), A.c.outcome.is_(None))
    .values(
        outcome="interrupted",
        finished_at=sa.bindparam("now"),
        error="no result recorded before the lease expired (worker stopped or crashed)",
    )
)
_LEASE = (
    sa.update(D)
    .where(D.c.id == sa.bindparam("b_id"))
    .values(
        attempts=sa.bindparam("b_attempts"),
        leased_until=sa.bindparam("b_until"),
        lease_token=sa.bindparam("b_token"),
    )
)
_START_ATTEMPTS = sa.insert(A).returning(A.c.id, A.c.delivery_id, sort_by_parameter_order=True)

_FINISH_ATTEMPT = (
    sa.update(A)
    .where(A.c.id == sa.bindparam("b_id"))
    .values(
        outcome=sa.bindparam("b_outcome"),
        status_code=sa.bindparam("b_status"),
        latency_ms=sa.bindparam("b_latency"),
        response_excerpt=sa.bindparam("b_excerpt"),
        error=sa.bindparam("b_error"),
        finished_at=sa.bindparam("b_finished"),
    )
)
_LOCK_ENDPOINTS = sa.select(E.c.id).where(E.c.id.in_(_IDS)).order_by(E.c.id)
_LOCK_ENDPOINTS_PG = _LOCK_ENDPOINTS.with_for_update(key_share=True)
_ENDPOINT_ENTITIES = (
    sa.select(WebhookEndpoint)
    .where(col(WebhookEndpoint.id).in_(_IDS))
    .order_by(col(WebhookEndpoint.id))
    .execution_options(populate_existing=True)
)
_ENDPOINT_ENTITIES_PG = _ENDPOINT_ENTITIES.with_for_update(key_share=True)
_LOCK_DELIVERIES = sa.select(D.c.id, D.c.lease_token, D.c.round_start).where(D.c.id.in_(_IDS)).order_by(D.c.id)
_LOCK_DELIVERIES_PG = _LOCK_DELIVERIES.with_for_update(key_share=True)
_DELIVERED = (
    sa.update(D)
    .where(D.c.id.in_(_IDS))
    .values(
        state=DELIVERED,
        next_attempt_at=None,
        leased_until=None,
        lease_token=None,
        finished_at=sa.bindparam("now"),
        last_error=None,
    )
)
# A success ends the endpoint's failure streak; rows already healthy are left alone.
_HEALTHY = sa.update(E).where(E.c.id.in_(_IDS), E.c.failing_since.is_not(None)).values(failing_since=None)


@functools.cache
def _candidates(size: int) -> Any:
    """The oldest due deliveries of ``size`` endpoints (``:e<i>``), at most ``:q<i>`` of each."""
    parts = [
        sa.select(D.c.next_attempt_at, D.c.id)
        .where(D.c.endpoint_id == sa.bindparam(f"e{i}"), *_due())
        .order_by(D.c.next_attempt_at, D.c.id)
        .limit(sa.bindparam(f"q{i}", type_=sa.Integer))
        .subquery()
        .select()
        for i in range(size)
    ]
    return parts[0] if size == 1 else sa.union_all(*parts)


# --------------------------------------------------------------------------------------------------
# 1. Fan-out
# --------------------------------------------------------------------------------------------------


def dispatch_outbox(database: Database, settings: Settings, *, batch: int = OUTBOX_BATCH) -> int:
    """Fan one batch of undispatched outbox rows out into deliveries. Returns the rows handled."""
    with database.transaction() as session:
        return _fan_out(session, settings, batch=batch)


def _fan_out(session: Session, settings: Settings, *, batch: int) -> int:
    """The fan-out itself, in the caller's transaction."""
    # Plain rows: nothing here needs ORM entities.
    conn = session.connection()
    postgres = conn.dialect.name == "postgresql"
    events = conn.execute(_UNDISPATCHED_PG if postgres else _UNDISPATCHED, {"batch": batch}).all()
    if not events:
        return 0
    endpoints = conn.execute(_SUBSCRIBERS).all()
    now = clock.now()
    rows: list[dict[str, Any]] = []
    for event in events:
        targets = [e for e in endpoints if event_matches(e.events, event.type)]
        if not targets:
            continue
        data = service.event_data(settings, event.claim_id, event.payload or {})
        rendered: dict[str, str] = {}
        for endpoint in targets:
            row = service.delivery_row(
                endpoint_id=endpoint.id,
                fmt=endpoint.format,
                event_type=event.type,
                occurred_at=event.created_at,
                data=data,
                outbox_id=event.id,
                now=now,
            )
            # Endpoints of one format share the rendering (the bytes do not depend on the endpoint).
            row["body"] = rendered.setdefault(endpoint.format, row["body"])
            rows.append(row)
    if rows:
        conn.execute(_INSERT_DELIVERIES, rows)
    conn.execute(_MARK_DISPATCHED, {"ids": [e.id for e in events], "now": now})
    return len(events)


# --------------------------------------------------------------------------------------------------
# 2. Claim
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed attempt: everything needed to send it without touching the database."""

    delivery_id: int
    endpoint_id: int
    attempt_id: int
    number: int
    msg_id: str
    url: str
    secrets: tuple[str, ...]
    body: bytes
    lease_token: str


def claim_due(
    database: Database,
    settings: Settings,
    *,
    limit: int,
    busy: dict[int, int] | None = None,
    per_endpoint: int = PER_ENDPOINT_CONCURRENCY,
) -> list[Job]:
    """Lease up to ``limit`` due deliveries, at most ``per_endpoint`` in flight per endpoint counting
    the ``busy`` ones this process already has.

    Candidates are found per endpoint (oldest due first, through the endpoint's own index range), so a
    large backlog on one endpoint neither takes every slot nor has to be scanned past to find the
    others' work. The oldest candidates across endpoints win when there are more than ``limit``.
    """
    with database.transaction() as session:
        return _claim(session, settings, limit=limit, busy=busy or {}, per_endpoint=per_endpoint)


def _claim(session: Session, settings: Settings, *, limit: int, busy: dict[int, int], per_endpoint: int) -> list[Job]:
    # The hot path works on plain rows (Core), not ORM objects: it runs for every few deliveries.
    if limit <= 0:
        return []
    conn = session.connection()
    now = clock.now()
    endpoints = {row.id: row for row in conn.execute(_SIGNERS)}
    quotas = sorted((eid, per_endpoint - busy.get(eid, 0)) for eid in endpoints)
    quotas = [(eid, quota) for eid, quota in quotas if quota > 0]
    candidates: list[tuple[datetime, int]] = []
    for start in range(0, len(quotas), CLAIM_UNION_CHUNK):
        chunk = quotas[start : start + CLAIM_UNION_CHUNK]
        params: dict[str, Any] = {"now": now}
        for i, (eid, quota) in enumerate(chunk):
            params[f"e{i}"] = eid
            params[f"q{i}"] = quota
        candidates.extend((row[0], row[1]) for row in conn.execute(_candidates(len(chunk)), params))
    if not candidates:
        return []
    wanted = [delivery_id for _, delivery_id in sorted(candidates)[:limit]]
    # Lock what is still due: on PostgreSQL another worker may have taken some in the meantime.
    postgres = conn.dialect.name == "postgresql"
    chosen = conn.execute(_LOCK_DUE_PG if postgres else _LOCK_DUE, {"ids": wanted, "now": now}).all()
    if not chosen:
        return []
    # An attempt that was started but never finished belonged to a worker that lost its lease
    # (crashed, killed, stalled): say so in the log before the next attempt starts.
    stale = [row.id for row in chosen if row.leased_until is not None]
    if stale:
        conn.execute(_INTERRUPT_STALE, {"ids": stale, "now": now})
    lease_until = now + timedelta(seconds=settings.webhook_timeout + LEASE_MARGIN_SECONDS)
    tokens = {row.id: secrets.token_hex(16) for row in chosen}
    conn.execute(
        _LEASE,
        [
            {"b_id": row.id, "b_attempts": row.attempts + 1, "b_until": lease_until, "b_token": tokens[row.id]}
            for row in chosen
        ],
    )
    attempt_ids = {
        delivery_id: attempt_id
        for attempt_id, delivery_id in conn.execute(
            _START_ATTEMPTS,
            [{"delivery_id": row.id, "number": row.attempts + 1, "started_at": now} for row in chosen],
        )
    }
    signers: dict[int, tuple[str, ...]] = {}
    jobs: list[Job] = []
    for row in chosen:
        endpoint = endpoints[row.endpoint_id]
        if row.endpoint_id not in signers:
            signers[row.endpoint_id] = tuple(service.signing_secrets(endpoint, now))
        jobs.append(
            Job(
                delivery_id=row.id,
                endpoint_id=row.endpoint_id,
                attempt_id=attempt_ids[row.id],
                number=row.attempts + 1,
                msg_id=row.msg_id,
                url=endpoint.url,
                secrets=signers[row.endpoint_id],
                body=row.body.encode("ascii"),
                lease_token=tokens[row.id],
            )
        )
    return jobs


# --------------------------------------------------------------------------------------------------
# 3. Record
# --------------------------------------------------------------------------------------------------


def _short(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def record_results(database: Database, settings: Settings, results: Iterable[tuple[Job, AttemptResult]]) -> None:
    """Write the outcomes of finished attempts and move their deliveries on, in one transaction.

    Rows are locked endpoint first, then its deliveries, always in id order, so concurrent workers
    cannot deadlock on each other.
    """
    with database.transaction() as session:
        _record(session, settings, list(results))


def _record(session: Session, settings: Settings, results: list[tuple[Job, AttemptResult]]) -> None:
    ordered = sorted(results, key=lambda item: (item[0].endpoint_id, item[0].delivery_id))
    if not ordered:
        return
    conn = session.connection()
    postgres = conn.dialect.name == "postgresql"
    now = clock.now()
    conn.execute(
        _FINISH_ATTEMPT,
        [
            {
                "b_id": job.attempt_id,
                "b_outcome": result.outcome,
                "b_status": result.status_code,
                "b_latency": result.latency_ms,
                "b_excerpt": _short(result.response_excerpt, EXCERPT_CHARS),
                "b_error": _short(result.error, ERROR_CHARS),
                "b_finished": now,
            }
            for job, result in ordered
        ],
    )
    # Endpoints first, then deliveries, each in id order: the same order as every other writer.
    endpoint_ids = sorted({job.endpoint_id for job, _ in ordered})
    entities: dict[int | None, WebhookEndpoint] = {}
    if any(result.outcome != "success" for _, result in ordered):
        # A failure moves the endpoint's streak and may disable it (with an audit event): that path
        # works on entities, and the batch's successes clear the streak on them in delivery order.
        stmt = _ENDPOINT_ENTITIES_PG if postgres else _ENDPOINT_ENTITIES
        entities = {e.id: e for e in session.execute(stmt, {"ids": endpoint_ids}).scalars()}
        present: Collection[int | None] = entities.keys()
    else:
        # Only successes (the usual batch): the endpoints need locking and one UPDATE, no entities.
        present = set(
            conn.execute(_LOCK_ENDPOINTS_PG if postgres else _LOCK_ENDPOINTS, {"ids": endpoint_ids}).scalars()
        )
    deliveries = {
        row.id: row
        for row in conn.execute(
            _LOCK_DELIVERIES_PG if postgres else _LOCK_DELIVERIES, {"ids": [job.delivery_id for job, _ in ordered]}
        )
    }
    delivered: list[int] = []
    healthy: set[int] = set()
    for job, result in ordered:
        delivery = deliveries.get(job.delivery_id)
        if job.endpoint_id not in present or delivery is None:
            continue  # deleted while the attempt was on the wire
        if delivery.lease_token != job.lease_token:
            # The lease ran out and another worker took the delivery over; it decides now.
            continue
        endpoint = entities.get(job.endpoint_id)  # None when the batch had no failure
        if result.outcome == "success":
            delivered.append(job.delivery_id)
            if endpoint is None:
                healthy.add(job.endpoint_id)
            else:
                endpoint.failing_since = None
            continue
        assert endpoint is not None
        values = _after_failure(session, settings, endpoint, job.number - delivery.round_start, result, now)
        session.execute(sa.update(D).where(D.c.id == job.delivery_id).values(**values))
    if delivered:
        conn.execute(_DELIVERED, {"ids": delivered, "now": now})
    if healthy:
        conn.execute(_HEALTHY, {"ids": sorted(healthy)})
    session.flush()


def _after_failure(
    session: Session,
    settings: Settings,
    endpoint: WebhookEndpoint,
    round_attempt: int,
    result: AttemptResult,
    now: datetime,
) -> dict[str, Any]:
    """The delivery's new column values after a failed attempt; may disable the (locked) endpoint."""
    error = _short(result.error or result.outcome, ERROR_CHARS)
    if endpoint.failing_since is None:
        endpoint.failing_since = now
    if result.outcome == "gone":
        service.disable_endpoint(session, endpoint, reason="the receiver answered 410 Gone", now=now)
    elif (now - endpoint.failing_since).total_seconds() >= settings.webhook_disable_after:
        days = settings.webhook_disable_after / 86400
        service.disable_endpoint(session, endpoint, reason=f"every attempt failed for {days:g} days", now=now)
    values: dict[str, Any] = {"leased_until": None, "lease_token": None, "last_error": error}
    delay = None
    if endpoint.enabled:
        delay = next_delay(list(settings.webhook_retry_schedule), max(round_attempt, 1), result.retry_after_seconds)
    if delay is None:
        values.update(state=FAILED, next_attempt_at=None, finished_at=now)
        if not endpoint.enabled:
            values["last_error"] = _short(f"{error}; endpoint disabled", ERROR_CHARS)
    else:
        values["next_attempt_at"] = now + timedelta(seconds=delay)
    return values


def cycle(
    database: Database,
    settings: Settings,
    results: list[tuple[Job, AttemptResult]],
    *,
    limit: int,
    busy: dict[int, int],
    per_endpoint: int = PER_ENDPOINT_CONCURRENCY,
    fan_out: bool = False,
) -> tuple[int, list[Job]]:
    """One round of the worker in one transaction: with ``fan_out``, a batch of new outbox rows
    becomes deliveries first (so they can be claimed at once); then finished attempts are recorded
    and new ones claimed. One write transaction instead of two per round matters on SQLite, where
    writers take turns. Returns (outbox rows fanned out, or -1 if the fan-out failed; the claims).
    A fan-out that fails is rolled back alone (a savepoint) and logged: recording and claiming go on."""
    with database.transaction() as session:
        fanned = 0
        if fan_out:
            try:
                with session.begin_nested():
                    fanned = _fan_out(session, settings, batch=OUTBOX_BATCH)
            except Exception as exc:
                if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
                    raise  # the whole transaction is gone
                log.exception("fanning out the outbox failed; trying again shortly")
                fanned = -1
        _record(session, settings, results)
        return fanned, _claim(session, settings, limit=limit, busy=busy, per_endpoint=per_endpoint)


def release(database: Database, jobs: Iterable[tuple[Job, str]]) -> None:
    """Give back attempts that were stopped before an answer came (worker shutdown): the attempt is
    marked interrupted and the delivery is due again at once, for any worker."""
    items = sorted(jobs, key=lambda item: item[0].delivery_id)
    if not items:
        return
    with database.transaction() as session:
        now = clock.now()
        for job, why in items:
            session.execute(
                sa.update(WebhookAttempt)
                .where(col(WebhookAttempt.id) == job.attempt_id, col(WebhookAttempt.outcome).is_(None))
                .values(outcome="interrupted", finished_at=now, error=why)
                .execution_options(synchronize_session=False)
            )
            session.execute(
                sa.update(WebhookDelivery)
                .where(
                    col(WebhookDelivery.id) == job.delivery_id,
                    col(WebhookDelivery.lease_token) == job.lease_token,
                )
                .values(leased_until=None, lease_token=None, next_attempt_at=now)
                .execution_options(synchronize_session=False)
            )


# --------------------------------------------------------------------------------------------------
# Sending
# --------------------------------------------------------------------------------------------------


class WebhookMetrics:
    """The worker's counters (registered on the app's registry for the in-process worker)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.attempts = Counter(
            "claimdesk_webhook_attempts_total",
            "Webhook delivery attempts made by this process, by outcome.",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("success", "failure", "gone"):
            self.attempts.labels(outcome)


class DeliveryBacklogCollector(Collector):
    """Pending deliveries and the age of the oldest, read from the database at scrape time (so any
    API process reports the whole cluster's backlog)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("claimdesk_webhook_deliveries_pending", "Webhook deliveries waiting to be delivered."),
            GaugeMetricFamily(
                "claimdesk_webhook_oldest_pending_age_seconds",
                "Age of the oldest pending webhook delivery (0 when none).",
            ),
        )

    def describe(self) -> Iterable[Any]:
        return list(self._families())

    def collect(self) -> Iterable[Any]:
        pending, oldest = self._families()
        try:
            with self.database.read_session() as session:
                count, first = session.execute(
                    sa.select(sa.func.count(), sa.func.min(col(WebhookDelivery.created_at))).where(
                        col(WebhookDelivery.state) == PENDING
                    )
                ).one()
        except Exception:  # a scrape must not fail because the database is away
            log.warning("could not read the webhook backlog for /metrics", exc_info=True)
            return []
        age = 0.0
        if isinstance(first, datetime):
            if first.tzinfo is None:
                first = first.replace(tzinfo=UTC)
            age = max((clock.now() - first).total_seconds(), 0.0)
        pending.add_metric([], float(count or 0))
        oldest.add_metric([], age)
        return [pending, oldest]


@dataclass
class PassStats:
    dispatched: int = 0
    attempted: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class Deliverer:
    """Claims due deliveries and sends them concurrently, recording results as they come in.

    At most ``concurrency`` attempts are on the wire at once, and at most ``per_endpoint`` for any one
    endpoint, so a receiver that hangs until the timeout only holds up its own deliveries. Delivery
    order is not guaranteed, not even per endpoint.

    Database work runs in ``executor`` threads (the engines are synchronous); HTTP runs in the loop.
    """

    def __init__(
        self,
        database: Database,
        settings: Settings,
        client: DeliveryClient,
        *,
        concurrency: int = MAX_CONCURRENCY,
        per_endpoint: int = PER_ENDPOINT_CONCURRENCY,
        metrics: WebhookMetrics | None = None,
        executor: Executor | None = None,
        on_finished: Callable[[], None] | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.client = client
        self.concurrency = concurrency
        self.per_endpoint = per_endpoint
        self.metrics = metrics
        self.executor = executor
        self.on_finished = on_finished
        self.busy: dict[int, int] = defaultdict(int)
        self.tasks: dict[asyncio.Task[None], Job] = {}
        self.finished: list[tuple[Job, AttemptResult]] = []
        self.stats = PassStats()
        # Whether the outbox may hold rows to fan out (set by commits, polls and failed attempts).
        self.outbox_dirty = True
        self._fan_out_paused_until = 0.0

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))

    @property
    def in_flight(self) -> int:
        return len(self.tasks)

    async def dispatch(self) -> int:
        """Fan out every undispatched outbox row (in batches)."""
        self.outbox_dirty = False
        total = 0
        while True:
            done = await self._db(dispatch_outbox, self.database, self.settings)
            total += done
            if done < OUTBOX_BATCH:
                break
        self.stats.dispatched += total
        return total

    def _start(self, jobs: list[Job]) -> None:
        for job in jobs:
            self.busy[job.endpoint_id] += 1
            task = asyncio.create_task(self._send(job), name=f"webhook-{job.msg_id}")
            self.tasks[task] = job
            task.add_done_callback(self._done)

    async def step(self, *, fan_out: bool = False) -> int:
        """Record the attempts finished since the last step and fill the free slots with due
        deliveries, in one transaction; with ``fan_out``, new outbox rows become deliveries first
        in the same transaction. Returns how many rows were fanned out, attempts recorded and
        attempts started."""
        batch, self.finished = self.finished, []
        room = self.concurrency - len(self.tasks)
        busy = {k: v for k, v in self.busy.items() if v}
        if fan_out and time.monotonic() < self._fan_out_paused_until:
            fan_out = False  # it failed a moment ago: record and claim meanwhile, retry after a pause
        if fan_out:
            self.outbox_dirty = False
        fanned = 0
        try:
            fanned, jobs = await self._db(
                cycle,
                self.database,
                self.settings,
                batch,
                limit=room,
                busy=busy,
                per_endpoint=self.per_endpoint,
                fan_out=fan_out,
            )
        except Exception:
            if fan_out:
                self.outbox_dirty = True
            if not batch:
                raise
            # One bad row must not lose the others: record them one by one; whatever still fails keeps
            # its lease, which runs out, and the delivery is sent again.
            log.exception("recording %d webhook attempts failed; retrying one at a time", len(batch))
            await self._record_each(batch)
            jobs = []
        if any(result.outcome != "success" for _, result in batch):
            self.outbox_dirty = True  # a disabled endpoint is announced through the outbox
        if fanned < 0:
            self._fan_out_paused_until = time.monotonic() + FAN_OUT_RETRY_SECONDS
        if fanned < 0 or fanned >= OUTBOX_BATCH:
            self.outbox_dirty = True  # it failed, or more may be waiting
        self.stats.dispatched += max(fanned, 0)
        self._start(jobs)
        return max(fanned, 0) + len(batch) + len(jobs)

    async def _record_each(self, batch: list[tuple[Job, AttemptResult]]) -> None:
        for item in batch:
            try:
                await self._db(record_results, self.database, self.settings, [item])
            except Exception:
                log.exception("could not record the attempt of delivery %s", item[0].delivery_id)

    def _done(self, task: asyncio.Task[None]) -> None:
        job = self.tasks.pop(task, None)
        if job is not None:
            self.busy[job.endpoint_id] -= 1
        if not task.cancelled() and task.exception() is not None:
            # send_attempt never raises for network trouble; this is a bug. The lease runs out and the
            # delivery is sent again.
            log.error("a webhook send crashed", exc_info=task.exception())
        if self.on_finished is not None:
            self.on_finished()

    async def _send(self, job: Job) -> None:
        headers = build_headers(job.secrets, job.msg_id, int(clock.now().timestamp()), job.body)
        result = await send_attempt(self.client, url=job.url, headers=headers, body=job.body, settings=self.settings)
        self.finished.append((job, result))
        self.stats.attempted += 1
        self.stats.outcomes[result.outcome] += 1
        if self.metrics is not None:
            self.metrics.attempts.labels(result.outcome).inc()

    async def flush(self) -> int:
        """Record every attempt that has finished, claiming nothing."""
        batch, self.finished = self.finished, []
        if batch:
            try:
                await self._db(record_results, self.database, self.settings, batch)
            except Exception:
                log.exception("recording %d webhook attempts failed; retrying one at a time", len(batch))
                await self._record_each(batch)
        return len(batch)

    async def wait_any(self, timeout: float | None = None) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)

    async def drain(self, grace: float) -> None:
        """Stop: let attempts on the wire finish for up to ``grace`` seconds, cancel the rest and give
        their deliveries back, then record everything."""
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=grace)
        stopped = list(self.tasks.items())
        for task, _job in stopped:
            task.cancel()
        if stopped:
            await asyncio.gather(*(t for t, _ in stopped), return_exceptions=True)
        await self.flush()
        if stopped:
            await self._db(release, self.database, [(job, "stopped by a worker shutdown") for _, job in stopped])

    async def run_until_idle(self) -> PassStats:
        """Fan out, then send everything that is due, until nothing is due or in flight."""
        while True:
            await self.dispatch()
            await self.step()
            if not self.tasks:
                break
            while self.tasks:
                await self.wait_any()
                await self.step()
        return self.stats


def run_pass(
    database: Database,
    settings: Settings,
    *,
    concurrency: int = MAX_CONCURRENCY,
    per_endpoint: int = PER_ENDPOINT_CONCURRENCY,
    metrics: WebhookMetrics | None = None,
) -> PassStats:
    """One synchronous pass: fan out the outbox and deliver everything due now (retries scheduled
    for later stay pending). For tests and one-off runs; the worker loop does the same continuously."""

    async def go() -> PassStats:
        async with create_client() as client:
            deliverer = Deliverer(
                database, settings, client, concurrency=concurrency, per_endpoint=per_endpoint, metrics=metrics
            )
            return await deliverer.run_until_idle()

    return asyncio.run(go())
