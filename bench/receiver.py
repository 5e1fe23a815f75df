"""A webhook receiver on loopback for the webhooks benchmark, run in its own process.

    python -m bench.receiver --port PORT

Any POST is a delivery: it is answered ``200 ok`` at once and remembered with its arrival time
(``time.time()`` once the body is in), its ``webhook-id`` and its body. Headers are kept for a sample
(the first 20 and every 250th) so the benchmark can check signatures. Two GETs report back:

* ``/_stats``: ``{"received": n, "distinct": d}`` (cheap; polled while waiting);
* ``/_dump``: every delivery as ``[arrival, webhook_id, event_timestamp, claim_id]`` plus the samples.

Bodies are parsed only for ``/_dump``, so receiving costs as little as possible. Stops on SIGTERM,
and after ``--max-seconds`` in any case.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from typing import Any

from bench.rawhttp import ProtocolError, read_message, render

SAMPLE_FIRST = 20
SAMPLE_EVERY = 250


class Receiver:
    def __init__(self) -> None:
        self.deliveries: list[tuple[float, str, bytes]] = []
        self.samples: list[dict[str, Any]] = []
        self.ids: set[str] = set()

    def record(self, headers: dict[str, str], body: bytes) -> None:
        arrived = time.time()
        webhook_id = headers.get("webhook-id", "")
        count = len(self.deliveries)
        self.deliveries.append((arrived, webhook_id, body))
        self.ids.add(webhook_id)
        if count < SAMPLE_FIRST or count % SAMPLE_EVERY == 0:
            self.samples.append({"headers": headers, "body": body.decode("utf-8", "replace")})

    def stats(self) -> dict[str, int]:
        return {"received": len(self.deliveries), "distinct": len(self.ids)}

    def dump(self) -> dict[str, Any]:
        rows = []
        for arrived, webhook_id, body in self.deliveries:
            timestamp = None
            claim_id = None
            with contextlib.suppress(ValueError, KeyError, TypeError):
                event = json.loads(body)
                timestamp = event.get("timestamp")
                claim_id = event["data"]["claim"]["id"]
            rows.append([arrived, webhook_id, timestamp, claim_id])
        return {"deliveries": rows, "samples": self.samples}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                message = await read_message(reader)
                if message is None:
                    break
                if message.method == "GET" and message.target == "/_stats":
                    answer = render(
                        "HTTP/1.1 200 OK", {"content-type": "application/json"}, json.dumps(self.stats()).encode()
                    )
                elif message.method == "GET" and message.target == "/_dump":
                    answer = render(
                        "HTTP/1.1 200 OK", {"content-type": "application/json"}, json.dumps(self.dump()).encode()
                    )
                elif message.method == "POST":
                    self.record(message.headers, message.body)
                    answer = render("HTTP/1.1 200 OK", {"content-type": "text/plain"}, b"ok")
                else:
                    answer = render("HTTP/1.1 404 Not Found", {}, b"")
                writer.write(answer)
                await writer.drain()
                if message.headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, ProtocolError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def serve(port: int, max_seconds: float) -> None:
    receiver = Receiver()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", port, backlog=1024)
    print(f"ready on 127.0.0.1:{port}", flush=True)
    async with server:
        # Bounded in time even if the benchmark that started us dies without stopping us.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=max_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, default=900.0, help="exit after this long regardless")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.max_seconds))


if __name__ == "__main__":
    main()
