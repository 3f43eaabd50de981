"""Real parts for the notifier tests: a recording HTTP receiver, an SMTP server, a TLS cert."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlmodel import Session as DbSession

from hookwatch.config import ConfigError, parse_config
from hookwatch.notifiers.message import AlertMessage, TopError
from hookwatch.notifiers.registry import NotifierConfig
from hookwatch.notifiers.worker import DeliveryWorker
from hookwatch.settings import Settings
from hookwatch.storage.tables import Notification
from tests.conftest import free_port

Answer = tuple[int, dict[str, str], bytes]
ROUTING_KEY = "R0ut1ngK3y0f32CharactersForTest1"  # 32 characters, like a real one
SLACK_PATH = "/services/T000TEST/B000TEST/sl4ckS3cretP4thXYZ"
SLACK_TOKEN = "xoxb-test-token-0123456789abcdef"
HOOK_SECRET = "whsec_c2VjcmV0LWZvci1hbGVydC13ZWJob29rcy10ZXN0"
SMTP_PASSWORD = "sm7p-Passw0rd-for-tests"
DISCORD_PATH = "/api/webhooks/112233445566778899/d1sc0rdT0kenS3cret-abcdefXYZ"
TEAMS_SIG = "t3amsS1gS3cretValue0123456789"
TEAMS_PATH = ("/powerautomate/automations/direct/workflows/0a1b2c3d/triggers/manual/paths/invoke"
              f"?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={TEAMS_SIG}")
TELEGRAM_TOKEN = "123456789:AAteleGramS3cretT0kenPart_0123456789"
NTFY_TOKEN = "tk_ntfyS3cretT0ken0123456789abc"
NTFY_TOPIC = "/acme-oncall-7f3k2"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A local HTTP server that records every request; `script` answers first, then `answer`."""

    answer: Callable[[Request], Answer] = lambda _r: (200, {}, b"ok")
    script: list[Answer] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, self.path,
                                  {k.lower(): v for k, v in self.headers.items()}, body)
                with receiver._lock:
                    receiver.requests.append(request)
                    answer = receiver.script.pop(0) if receiver.script else None
                status, headers, out = answer or receiver.answer(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_PATCH = do_POST  # Discord edits a message in place

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)

    def fail(self, times: int, status: int = 500, headers: dict[str, str] | None = None,
             body: bytes = b"unavailable") -> None:
        with self._lock:
            self.script.extend([(status, headers or {}, body)] * times)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def slack_api_answer(request: Request) -> Answer:
    """chat.postMessage's answer: ok, with a fresh ts per message."""
    ts = f"1795000000.{len(request.body):06d}"
    return 200, {"content-type": "application/json"}, orjson.dumps(
        {"ok": True, "channel": "C0TEST", "ts": ts})


def pagerduty_answer(request: Request) -> Answer:
    body = request.json()
    return 202, {"content-type": "application/json"}, orjson.dumps(
        {"status": "success", "message": "Event processed", "dedup_key": body.get("dedup_key")})


def discord_answer(request: Request) -> Answer:
    """Execute webhook with wait=true (and an edit) answer with the message; ids are snowflakes."""
    path = request.path.split("?")[0]
    message_id = path.rsplit("/", 1)[1] if "/messages/" in path else str(
        900_000_000_000_000_000 + len(request.body))
    return 200, {"content-type": "application/json"}, orjson.dumps(
        {"id": message_id, "type": 0, "channel_id": "1234", "webhook_id": "112233445566778899"})


def telegram_answer(request: Request) -> Answer:
    """sendMessage's answer: ok, with the sent Message (its message_id)."""
    return 200, {"content-type": "application/json"}, orjson.dumps(
        {"ok": True, "result": {"message_id": 4000 + len(request.body) % 1000,
                                "chat": {"id": -1001234567890, "type": "supergroup"},
                                "date": 1795000000, "text": "..."}})


# --- SMTP -------------------------------------------------------------------------------


@dataclass
class SmtpRecorder:
    """aiosmtpd handler: records messages; answers `refuse` (e.g. 451) for the first N."""

    messages: list[Envelope] = field(default_factory=list)
    refuse: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.refuse:
            return self.refuse.pop(0)
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


def authenticator(user: str, password: str) -> Callable[..., AuthResult]:
    def check(server: Any, session: Session, envelope: Envelope, mechanism: str,
              auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode() == user and auth_data.password.decode() == password)
        return AuthResult(success=ok, handled=False)
    return check


def smtp_controller(handler: SmtpRecorder, **kwargs: Any) -> Controller:
    """A started aiosmtpd server on a free port (Controller(port=0) would not start)."""
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    return controller


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, made now, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


# --- messages, configs, the worker, outbox ---------------------------------------------------


def alert(kind: str = "trigger", **changes: Any) -> AlertMessage:
    message = AlertMessage(
        kind=kind,  # type: ignore[arg-type]
        alert_key="deployment-error-rate:deployment:acme/sdxl",
        alert_id=7,
        rule="deployment-error-rate",
        rule_kind="error_rate",
        severity="critical",
        scope="deployment",
        scope_name="acme/sdxl",
        summary="acme/sdxl: 35.0% of predictions failed in the last 10m",
        started_at=1_795_000_000.0,
        at=1_795_000_060.0,
        value=0.35,
        threshold=0.2,
        window_seconds=600,
        counts={"succeeded": 78, "failed": 42, "canceled": 1, "aborted": 0},
        top_errors=[
            TopError("a1b2c3d4e5f6a7b8", 30, "CUDA out of memory. Tried to allocate 2.00 GiB"),
            TopError("0f0e0d0c0b0a0908", 12, "ValueError: <prompt> & `seed` must be set"),
        ],
        dashboard_url="https://hooks.example.com/",
        alert_url="https://hooks.example.com/alerts/7",
    )
    return dataclasses.replace(message, **changes)


def huge_alert(kind: str = "trigger", **changes: Any) -> AlertMessage:
    """Past every channel's limits: a 100,000-character error message among 200 top errors,
    markup characters everywhere, a long summary."""
    errors = [TopError(f"{i:016x}", 1000 - i, ("CUDA <b>&amp;</b> *oom* `x` " * 4000)
                       if i == 0 else f"RuntimeError {i}: <{i}> & [{i}](x) " * 20)
              for i in range(200)]
    return alert(kind, top_errors=errors, summary="acme/sdxl <failed> & *more* " * 400,
                 **changes)


def config_problems(tables: dict[str, dict[str, Any]]) -> list[str]:
    """The problem lines check-config would print for these [notifiers.*] tables."""
    try:
        parse_config({"notifiers": tables}, env={})
    except ConfigError as exc:
        return exc.problems
    return []


def notifier_configs(tables: dict[str, dict[str, Any]]) -> dict[str, NotifierConfig]:
    return parse_config({"notifiers": tables}, env={}).notifiers


def make_worker(engine: Engine, configs: dict[str, NotifierConfig], *,
                max_age: float | None = None,
                registry: CollectorRegistry | None = None) -> DeliveryWorker:
    """The delivery worker as create_app builds it (the service's default max age)."""
    if max_age is None:
        max_age = Settings(database_url=str(engine.url)).delivery_max_age
    return DeliveryWorker(engine, configs, max_age=max_age, registry=registry)


def enqueue(engine: Engine, message: AlertMessage, *, notifier: str, now: float,
            state: str = "pending") -> int:
    """An outbox row, written the way the alert engine writes one."""
    with DbSession(engine) as session:
        row = Notification(
            alert_id=message.alert_id, alert_key=message.alert_key, notifier=notifier,
            kind=message.kind, payload=orjson.dumps(message.to_json()).decode(), state=state,
            created_at=now, due_at=now,
        )
        session.add(row)
        session.commit()
        assert row.id is not None
        return row.id


# --- misbehaving receivers (raw sockets: they must not be polite) -------------------------


class RawReceiver:
    """A TCP server whose `serve(conn)` runs per connection in its own thread; it records how
    many connections came and how many answer bytes it wrote before the peer left."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self.written = 0
        self.connected = threading.Event()
        self.stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _accept(self) -> None:
        self._sock.settimeout(0.05)
        while not self.stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self.connected.set()
            thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self, conn: socket.socket) -> None:
        with conn:
            try:
                read_request(conn)
                self.serve(conn)
            except OSError:
                pass

    def __enter__(self) -> RawReceiver:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._sock.close()
        for thread in self._threads:
            thread.join(5)


def read_request(conn: socket.socket) -> bytes:
    """Read one HTTP request (head and content-length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class Hanging(RawReceiver):
    """Accepts the connection, reads the request, never answers."""

    def serve(self, conn: socket.socket) -> None:
        self.stop.wait(60)


class Trickling(RawReceiver):
    """Answers one byte every `every` seconds: each read arrives before any read timeout."""

    def __init__(self, every: float = 0.1) -> None:
        super().__init__()
        self.every = every

    def serve(self, conn: socket.socket) -> None:
        answer = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n" + b"x-pad: " + b"a" * 10_000
        for byte in answer:
            if self.stop.wait(self.every):
                return
            conn.sendall(bytes([byte]))
            self.written += 1


class Huge(RawReceiver):
    """A 200 whose body is `size` bytes, written as fast as the peer reads."""

    def __init__(self, size: int = 50 * 1024 * 1024) -> None:
        super().__init__()
        self.size = size

    def serve(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                     + f"content-length: {self.size}\r\n\r\n".encode())
        chunk = b"x" * 65536
        while self.written < self.size and not self.stop.is_set():
            conn.sendall(chunk)
            self.written += len(chunk)
