"""webhooks: 10,000 claim.created events delivered to a receiver on loopback.

1. A receiver (``bench.receiver``, a bare asyncio HTTP server in its own process) answers every POST
   with 200 at once and records arrival time, webhook-id and body.
2. The server runs with CLAIMDESK_WEBHOOK_ALLOWED_CIDRS=127.0.0.0/8 (loopback targets are refused
   otherwise). An admin registers the receiver via POST /api/v1/webhooks for ["claim.created"].
3. Steady phase: 500 claims (200 with --quick) are created by single POSTs at 50 a second, on a
   fixed schedule. Its event-to-delivery latency is what a subscriber sees on a busy desk whose
   server keeps up; the latency target applies to it.
   Flat-out phase: 10,000 claims (2,000 with --quick) are created through POST /api/v1/claims:batch,
   1,000 a request, one request after another, as fast as the server answers. Delivery starts while
   this goes on (a batch commits every 50 items), sharing the server's one core of Python with the
   creation; its latency is mostly time spent in the backlog, reported without a target.
   Texts are 8-14 pseudo-words from a 2,000-word vocabulary: claims share words (the duplicate check
   on creation has candidates to score) without being near-duplicates of one another.
4. The benchmark waits until every webhook-id has arrived (at most 180 s after the last batch
   returned), then reads the receiver's log. Throughput is distinct deliveries over first-to-last
   arrival (also: the drain rate once the last batch has committed, when nothing competes with the
   worker); latency is arrival minus the event's own ``timestamp`` (when the claim was created,
   inside its transaction).
5. Checks: nothing lost; the events name exactly the claims created; a sample of deliveries verifies
   with the official ``standardwebhooks`` library and the secret from registration (and a tampered
   body does not).
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from typing import Any

import httpx

from bench.harness import (
    BENCH_DIR,
    BenchError,
    Desk,
    Metric,
    MiB,
    RssSampler,
    die_with_parent,
    expect,
    free_port,
    latency_summary_ms,
    log,
    stop_process,
)

NAME = "webhooks"
DESCRIPTION = "claim.created webhooks to a loopback receiver: 500 at a steady 50/s, then 10,000 flat out"

BATCH = 1000
# The steady phase: single POSTs at this rate (a very busy desk), the latency a subscriber sees when
# the server keeps up. The flat-out phase's latency only says how long the backlog took to drain.
PACED_RATE = 50
WAIT_SECONDS = 180
TARGET_RATE = 500
TARGET_P50_MS = 250
SYLLABLES = [
    "ka", "lo", "mi", "ra", "te", "su", "no", "vi", "da", "pe", "ri", "to", "ba", "ne", "gu", "sha", "an", "or",
]  # fmt: skip


def vocabulary(size: int, rng: random.Random) -> list[str]:
    """``size`` distinct pseudo-words: claims that share some words but are rarely near-duplicates."""
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choices(SYLLABLES, k=rng.randint(2, 4))))
    return sorted(words)


def claim_items(start: int, count: int, words: list[str], rng: random.Random) -> list[dict[str, Any]]:
    items = []
    for i in range(start, start + count):
        text = " ".join(rng.choices(words, k=rng.randint(8, 14)))
        items.append(
            {
                "text": f"{text.capitalize()}, {rng.randint(2, 98)}% since {rng.randint(1990, 2025)} (ref {i}).",
                "priority": ("normal", "high", "low")[i % 3],
            }
        )
    return items


def start_receiver(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(  # noqa: S603  # this interpreter running our own module
        [sys.executable, "-m", "bench.receiver", "--port", str(port), "--max-seconds", "900"],
        cwd=BENCH_DIR.parent,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise BenchError(f"the receiver exited with {proc.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/_stats", timeout=1, trust_env=False).raise_for_status()
            return proc
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                stop_process(proc)
                raise BenchError("the receiver did not come up") from None
            time.sleep(0.1)


def verify_samples(secret: str, samples: list[dict[str, Any]]) -> tuple[int, int, bool]:
    """(verified, sampled, tampered body refused) with the standardwebhooks library."""
    from standardwebhooks import Webhook
    from standardwebhooks.webhooks import WebhookVerificationError

    verifier = Webhook(secret)
    verified = 0
    for sample in samples:
        try:
            event = verifier.verify(sample["body"], sample["headers"])
        except WebhookVerificationError:
            continue
        verified += event.get("type") == "claim.created"
    tampered_refused = False
    if samples:
        first = samples[0]
        try:
            verifier.verify(first["body"].replace("claim.created", "claim.createD"), first["headers"])
        except WebhookVerificationError:
            tampered_refused = True
    return verified, len(samples), tampered_refused


def _epoch(timestamp: str | None) -> float | None:
    if not timestamp:
        return None
    return datetime.fromisoformat(timestamp).timestamp()


def _latencies(rows: Any) -> list[float]:
    """Arrival minus the event's own timestamp, in seconds, for receiver rows."""
    out = []
    for arrived, _, timestamp, _ in rows:
        event_at = _epoch(timestamp)
        if event_at is not None:
            out.append(max(arrived - event_at, 0.0))
    return out


def _paced_phase(
    admin: httpx.Client, stats: httpx.Client, count: int, words: list[str], rng: random.Random
) -> list[int]:
    """``count`` single POSTs at PACED_RATE a second (on a fixed schedule, not one after another's
    answer); returns the claims' ids once their events have all arrived (or the wait runs out)."""
    ids: list[int] = []
    began = time.monotonic()
    for n, item in enumerate(claim_items(1_000_000, count, words, rng)):
        pause = began + n / PACED_RATE - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        ids.append(expect(admin.post("/api/v1/claims", json=item), 201)["id"])
    log(f"{NAME}: steady phase: {count} claims in {time.monotonic() - began:.1f} s")
    deadline = time.time() + 60
    while time.time() < deadline and stats.get("/_stats").json()["distinct"] < count:
        time.sleep(0.1)
    return ids


def run(desk: Desk, *, quick: bool) -> tuple[list[Metric], dict[str, Any]]:
    total = 2000 if quick else 10_000
    paced = 200 if quick else 500
    rng = random.Random(20261127)
    words = vocabulary(2000, rng)
    desk.extra_env["CLAIMDESK_WEBHOOK_ALLOWED_CIDRS"] = "127.0.0.0/8"
    desk.migrate()
    admin_key = desk.create_user("admin@bench.test", "admin")

    port = free_port()
    receiver = start_receiver(port)
    stats_client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, trust_env=False)
    try:
        with desk.serving(), desk.client(admin_key, timeout=300) as admin:
            hook = expect(
                admin.post(
                    "/api/v1/webhooks",
                    json={
                        "url": f"http://127.0.0.1:{port}/hooks/claimdesk",
                        "events": ["claim.created"],
                        "description": "benchmark receiver",
                    },
                ),
                201,
            )
            # Its own random stream: the flat-out phase's texts stay those of earlier runs.
            paced_ids = _paced_phase(admin, stats_client, paced, words, random.Random(7))
            batches = [claim_items(start, BATCH, words, rng) for start in range(0, total, BATCH)]
            created: list[int] = []
            batch_seconds: list[float] = []
            distinct = 0
            with RssSampler(desk.pid, interval=0.05) as rss:
                began = time.time()
                for items in batches:
                    t0 = time.perf_counter()
                    out = expect(admin.post("/api/v1/claims:batch", json={"items": items}), 200)
                    batch_seconds.append(time.perf_counter() - t0)
                    bad = [r for r in out["results"] if r["status"] != 201]
                    if bad:
                        raise BenchError(f"claims:batch refused {len(bad)} items, e.g. {bad[0]}")
                    created += [r["claim"]["id"] for r in out["results"]]
                creation_s = time.time() - began
                log(f"{NAME}: created {total:,} claims in {creation_s:.1f} s")
                created_at = time.time()
                deadline = created_at + WAIT_SECONDS
                while time.time() < deadline:
                    distinct = stats_client.get("/_stats").json()["distinct"]
                    if distinct >= total + paced:
                        break
                    time.sleep(0.2)
                time.sleep(1.0)  # room for late duplicates
            dump = stats_client.get("/_dump").json()
    finally:
        stats_client.close()
        stop_process(receiver, grace=5)

    all_deliveries = dump["deliveries"]
    paced_set = set(paced_ids)
    steady_first: dict[str, list[Any]] = {}
    for row in all_deliveries:
        if row[3] in paced_set:
            steady_first.setdefault(row[1], row)
    steady_latency = latency_summary_ms(_latencies(steady_first.values()))
    steady_ok = {row[3] for row in steady_first.values()} == paced_set
    deliveries = [row for row in all_deliveries if row[3] not in paced_set]
    ids = Counter(row[1] for row in deliveries)
    distinct = len(ids)
    duplicates = len(all_deliveries) - len(ids) - len(steady_first)
    lost = max(total - distinct, 0) + len(paced_set - {row[3] for row in steady_first.values()})
    arrivals = sorted(row[0] for row in deliveries)
    first_seen: dict[str, list[Any]] = {}
    for row in deliveries:
        first_seen.setdefault(row[1], row)
    latencies = _latencies(first_seen.values())
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    rate = distinct / span if span and span == span else float("nan")
    end_to_end = distinct / (arrivals[-1] - began) if arrivals else float("nan")
    # Once every claim is committed nothing competes with the worker: its unobstructed rate.
    after = [t for t in arrivals if t >= created_at]
    drain = len(after) / (after[-1] - created_at) if len(after) > 1 else float("nan")
    latency = latency_summary_ms(latencies)
    claims_seen = {row[3] for row in first_seen.values()}
    events_match = claims_seen == set(created)
    verified, sampled, tampered_refused = verify_samples(hook["secret"], dump["samples"])
    signatures_ok = sampled > 0 and verified == sampled and tampered_refused
    log(f"{NAME}: {distinct:,} distinct deliveries, {rate:.0f}/s, p50 {latency['p50']:.0f} ms")

    metrics = [
        Metric(f"steady: {paced} claims, one POST every {1000 // PACED_RATE} ms", paced),
        Metric("steady: event-to-delivery p50", steady_latency["p50"], "ms", f"<= {TARGET_P50_MS}"),
        Metric("steady: event-to-delivery p95", steady_latency["p95"], "ms"),
        Metric("steady: event-to-delivery p99", steady_latency["p99"], "ms"),
        Metric("steady: every claim's event delivered", "yes" if steady_ok else "NO", check=steady_ok),
        Metric("flat out: claims created (10 x claims:batch)" if not quick else "flat out: claims created", total),
        Metric("flat out: creation rate", round(total / creation_s, 1), "claims/s"),
        Metric("flat out: delivery rate (first to last arrival)", round(rate, 1), "deliveries/s", f">= {TARGET_RATE}"),
        Metric("flat out: end to end (first request to last arrival)", round(end_to_end, 1), "deliveries/s"),
        Metric("flat out: drain rate after the last batch committed", round(drain, 1), "deliveries/s"),
        Metric("flat out: event-to-delivery p50 (backlog included)", latency["p50"], "ms"),
        Metric("flat out: event-to-delivery p95", latency["p95"], "ms"),
        Metric("flat out: event-to-delivery p99", latency["p99"], "ms"),
        Metric("lost", lost, check=lost == 0),
        Metric("duplicates", duplicates),
        Metric("events name exactly the claims created", "yes" if events_match else "NO", check=events_match),
        Metric("signatures verified (standardwebhooks)", f"{verified}/{sampled}", check=signatures_ok),
        Metric("server CPU per event (create + fan out + deliver)", round(rss.cpu_seconds / total * 1000, 2), "ms"),
        Metric("server peak RSS", round(rss.peak / MiB, 1), "MiB", "<= 200"),
    ]
    details = {
        "events": total,
        "steady_events": paced,
        "steady_latency_ms": steady_latency,
        "endpoint_id": hook["id"],
        "batch_request_seconds": [round(s, 2) for s in batch_seconds],
        "creation_seconds": round(creation_s, 2),
        "first_to_last_arrival_seconds": round(span, 2),
        "arrived_before_creation_finished": len(arrivals) - len(after),
        "received": len(deliveries),
        "distinct": distinct,
        "latency_ms": latency,
        "tampered_body_refused": tampered_refused,
    }
    return metrics, details
