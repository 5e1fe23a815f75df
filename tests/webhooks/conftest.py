"""Loopback-only fixtures for the webhook tests: a scripted HTTP(S) receiver and a resetting socket."""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import ipaddress
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    """Settings built only from keyword arguments (no .env file; env vars could still leak in, so every
    webhook field a test depends on is passed explicitly)."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "webhook_allowed_cidrs": [],
            "webhook_allow_http": False,
            "webhook_timeout": 2.0,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return build


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    port: int
    scheme: str
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    sni_names: list[str | None] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            # Always drain the request body first: closing with unread data would turn a normal answer
            # into a TCP reset on the client side.
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            receiver.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            route = self.path.split("?", 1)[0]
            if route == "/ok":
                self._reply(200, b"thanks")
            elif route == "/cookie":
                self._reply(200, b"", {"Set-Cookie": "session=receiver-a-secret; Path=/"})
            elif route == "/accepted":
                self._reply(202)
            elif route == "/fail":
                self._reply(500, b"boom \xff bytes")
            elif route == "/busy":
                self._reply(503, b"later", {"Retry-After": "7"})
            elif route == "/busy-date":
                when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
                self._reply(503, b"", {"Retry-After": email.utils.format_datetime(when, usegmt=True)})
            elif route == "/slow-down":
                self._reply(429, b"too many", {"Retry-After": "30"})
            elif route == "/gone":
                self._reply(410, b"unsubscribed")
            elif route == "/redirect":
                self._reply(302, b"", {"Location": receiver.url("/target")})
            elif route == "/target":
                self._reply(200, b"should never be reached")
            elif route == "/hang":
                receiver.release.wait(5)
                self._reply(200, b"too late")
            elif route == "/drip":
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.flush()
                while not receiver.release.wait(0.05):
                    try:
                        self.wfile.write(b".")
                        self.wfile.flush()
                    except OSError:
                        return
            elif route == "/big":
                self._reply(200, b"a" * 2000 + b"b" * (1024 * 1024))
            else:
                self._reply(404, b"no such route")

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops SYNs when a starved machine is slow to accept, and the
    # client's SYN retry (1 s, then 3 s) reads as a timed-out attempt that has nothing to do with us.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up early (timeouts, capped reads, refused certificates) are the point of
        # several tests; anything else is still worth seeing.
        import sys

        if not isinstance(sys.exc_info()[1], (OSError, ssl.SSLError)):
            super().handle_error(request, client_address)


def _serve(receiver: Receiver, context: ssl.SSLContext | None) -> Iterator[Receiver]:
    server = _QuietServer(("127.0.0.1", 0), _handler_for(receiver))
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A plain-HTTP receiver on 127.0.0.1 with scripted routes."""
    yield from _serve(Receiver(port=0, scheme="http"), None)


def _self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"{name}.pem", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass
class TlsReceiver:
    receiver: Receiver
    ca_file: Path


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[TlsReceiver]:
    """An HTTPS receiver on 127.0.0.1 whose certificate names ``hooks.test``; records the SNI it sees."""
    cert, key = _self_signed(tmp_path, "hooks.test")
    receiver = Receiver(port=0, scheme="https")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def remember_sni(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, ctx: ssl.SSLContext) -> None:
        receiver.sni_names.append(name)

    context.sni_callback = remember_sni
    for served in _serve(receiver, context):
        yield TlsReceiver(served, cert)


@dataclass
class ResetServer:
    port: int
    accepted: int = 0


@contextlib.contextmanager
def _accepting(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback listener whose thread hands each accepted connection to ``handle`` in turn;
    yields its port, and stops (thread and listener) on exit."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            handle(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        listener.close()


@pytest.fixture
def reset_server() -> Iterator[ResetServer]:
    """Accepts, reads a little, then aborts the connection with a TCP RST (SO_LINGER 0)."""
    state = ResetServer(port=0)

    def reset(conn: socket.socket) -> None:
        state.accepted += 1
        conn.settimeout(1)
        with contextlib.suppress(OSError):
            conn.recv(65536)
        time.sleep(0.05)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    with _accepting(reset) as port:
        state.port = port
        yield state


@dataclass
class ScriptedServer:
    port: int
    requests: list[bytes] = field(default_factory=list)


def _read_request(conn: socket.socket) -> bytes:
    """One request, head and Content-Length body, as raw bytes (whatever arrived, on a timeout)."""
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in data:
            piece = conn.recv(65536)
            if not piece:
                return data
            data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.lower().split(b"\r\n")
                if line.startswith(b"content-length:")
            ),
            0,
        )
        while len(body) < length:
            piece = conn.recv(65536)
            if not piece:
                break
            body += piece
        data = head + b"\r\n\r\n" + body
    return data


@pytest.fixture
def scripted() -> Callable[[bytes], contextlib.AbstractContextManager[ScriptedServer]]:
    """Servers that read one request per connection, answer with the given raw bytes (possibly
    malformed) and close; each keeps the requests it read."""

    @contextlib.contextmanager
    def serve(answer: bytes) -> Iterator[ScriptedServer]:
        server = ScriptedServer(port=0)

        def answer_with_script(conn: socket.socket) -> None:
            with conn:
                conn.settimeout(2)
                server.requests.append(_read_request(conn))
                with contextlib.suppress(OSError):
                    conn.sendall(answer)

        with _accepting(answer_with_script) as port:
            server.port = port
            yield server

    return serve


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --------------------------------------------------------------------------------------------------
# Delivery tests: a receiver that verifies every request with the official standardwebhooks library
# --------------------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    hold: float = 0.0  # seconds to sit on the request before answering


@dataclass
class Hit:
    path: str
    msg_id: str
    headers: dict[str, str]
    body: bytes
    verified: bool | None  # None when the test registered no secret for the path
    error: str | None
    at: float

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class HookReceiver:
    """Loopback HTTP receiver. Per path: scripted replies (consumed in order, then ``default``) and the
    secrets a receiver there holds; every request is checked with ``Webhook(secret).verify``."""

    port: int = 0
    hits: list[Hit] = field(default_factory=list)
    scripts: dict[str, list[Reply]] = field(default_factory=dict)
    defaults: dict[str, Reply] = field(default_factory=dict)
    secrets: dict[str, list[str]] = field(default_factory=dict)
    overlaps: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _in_flight: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *replies: dict[str, Any]) -> None:
        """Answer the next requests to ``path`` with these replies (Reply fields as dicts), in order."""
        with self.lock:
            self.scripts.setdefault(path, []).extend(Reply(**r) for r in replies)

    def answer(self, path: str, **reply: Any) -> None:
        """How ``path`` answers once its script is used up (default: 200)."""
        with self.lock:
            self.defaults[path] = Reply(**reply)

    def trust(self, path: str, *secrets: str) -> None:
        with self.lock:
            self.secrets[path] = list(secrets)

    def at(self, path: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path == path]

    def msg_ids(self, path: str | None = None) -> list[str]:
        with self.lock:
            return [h.msg_id for h in self.hits if path is None or h.path == path]

    def _next_reply(self, path: str) -> Reply:
        with self.lock:
            queue = self.scripts.get(path)
            if queue:
                return queue.pop(0)
            return self.defaults.get(path, Reply())

    def _verify(self, path: str, headers: dict[str, str], body: bytes) -> tuple[bool | None, str | None]:
        from standardwebhooks import Webhook

        secrets = self.secrets.get(path)
        if not secrets:
            return None, None
        last = None
        for secret in secrets:
            try:
                Webhook(secret).verify(body, headers)
                return True, None
            except Exception as exc:
                last = f"{type(exc).__name__}: {exc}"
        return False, last


def _hook_handler(receiver: HookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            path = self.path.split("?", 1)[0]
            msg_id = headers.get("webhook-id", "")
            verified, error = receiver._verify(path, headers, body)
            with receiver.lock:
                receiver.hits.append(Hit(path, msg_id, headers, body, verified, error, time.monotonic()))
                receiver._in_flight[msg_id] = receiver._in_flight.get(msg_id, 0) + 1
                if receiver._in_flight[msg_id] > 1:
                    receiver.overlaps.append(msg_id)
            try:
                reply = receiver._next_reply(path)
                if reply.hold:
                    receiver.release.wait(reply.hold)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(reply.body)
            finally:
                with receiver.lock:
                    receiver._in_flight[msg_id] -= 1

    return Handler


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[HookReceiver]:
    """A verifying receiver on 127.0.0.1. The standardwebhooks timestamp check follows the test clock,
    so tests that move ``clock`` still verify."""
    import standardwebhooks.webhooks as sw

    from app.clock import clock

    class _ClockDatetime(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> Any:  # type: ignore[override]
            return clock.now()

    monkeypatch.setattr(sw, "datetime", _ClockDatetime)
    receiver = HookReceiver()
    server = _QuietServer(("127.0.0.1", 0), _hook_handler(receiver))
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


class Bench:
    """Shortcuts for the delivery tests: endpoints and events straight through the services, and the
    dispatcher driven one pass at a time."""

    def __init__(self, database: Any, settings: Settings) -> None:
        self.database = database
        self.settings = settings

    def tuned(self, **changes: Any) -> Settings:
        self.settings = self.settings.model_copy(update=changes)
        return self.settings

    def endpoint(self, url: str, events: list[str] | None = None, fmt: str = "standard") -> tuple[int, str]:
        from app.audit.service import Actor
        from app.webhooks import service

        with self.database.transaction() as session:
            endpoint = service.create_endpoint(
                session, actor=Actor.system(), settings=self.settings, url=url, events=events or ["*"], format=fmt
            )
            assert endpoint.id is not None
            return endpoint.id, endpoint.secret

    def emit(self, type_: str, payload: dict[str, Any] | None = None, *, claim_id: int | None = None) -> int:
        from app.audit.service import Actor, record

        with self.database.transaction() as session:
            event = record(
                session,
                type_=type_,
                actor=Actor.system(),
                subject=f"test:{type_}",
                data=payload or {"n": 1},
                claim_id=claim_id,
            )
            assert event.id is not None
            return event.id

    def run(self, **kwargs: Any) -> Any:
        from app.webhooks.dispatcher import run_pass

        return run_pass(self.database, self.settings, **kwargs)

    def deliveries(self, endpoint_id: int) -> list[Any]:
        """(delivery, [attempts]) oldest first."""
        from app.webhooks import service

        with self.database.read_session() as session:
            rows = service.list_deliveries(session, endpoint_id=endpoint_id, before_id=None, limit=10_000)
        return list(reversed(rows))

    def endpoint_row(self, endpoint_id: int) -> Any:
        from app.webhooks.models import WebhookEndpoint

        with self.database.read_session() as session:
            return session.get(WebhookEndpoint, endpoint_id)


@pytest.fixture
def bench(database: Any, settings: Settings) -> Bench:
    return Bench(database, settings)
