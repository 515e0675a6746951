"""A real SMTP server for tests: aiosmtpd's threaded ``Controller`` on 127.0.0.1 with TLS modes and faults.

Modes:

* ``"plain"``: no TLS at all (port 25 style).
* ``"starttls"``: STARTTLS offered and required before MAIL (port 587 style).
* ``"tls"``: implicit TLS from the first byte (port 465 style).

Certificates come from a throwaway ``trustme`` CA; :attr:`SmtpServer.ca_pem` is the CA file a client must
trust (``ssl.create_default_context(cafile=server.ca_pem)``). The server certificate is valid for
``127.0.0.1`` and ``localhost``.

With ``auth=("user", "password")`` the server offers AUTH PLAIN and LOGIN, refuses MAIL until the client
authenticated (530) and answers wrong credentials with 535. In ``"plain"`` mode AUTH is allowed without TLS.

Outages: :meth:`SmtpServer.set_outage` with ``"refuse"`` closes the listener (connection refused),
``"greeting"`` answers ``421`` on connect and hangs up, ``"tempfail"`` answers ``451`` to MAIL FROM;
:meth:`SmtpServer.recover` restores normal service on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

SmtpMode = Literal["plain", "starttls", "tls"]
OutageMode = Literal["refuse", "greeting", "tempfail"]


@dataclass
class ReceivedMessage:
    """One message the server accepted: the SMTP envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    auth_user: str | None
    tls: bool


class _Handler:
    """aiosmtpd handler hooks: outages on MAIL, collection on DATA."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_MAIL(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if self.server.outage == "tempfail":
            return "451 4.3.0 Temporary local problem, try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(envelope.content, bytes) and not raw:
            raw = envelope.content
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        login = session.login_data
        user = login.decode() if isinstance(login, bytes) else login
        self.server._received(ReceivedMessage(
            mail_from=str(envelope.mail_from), rcpt_tos=list(envelope.rcpt_tos), message=parsed, raw=raw,
            auth_user=user if isinstance(user, str) else None, tls=smtp._tls_protocol is not None or
            self.server.mode == "tls",
        ))
        return "250 2.0.0 Message accepted for delivery"


class _SMTP(SMTP):
    """aiosmtpd's SMTP with a switchable ``421`` greeting outage."""

    def __init__(self, harness: SmtpServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._harness = harness

    async def _handle_client(self) -> None:
        if self._harness.outage == "greeting":
            await self.push("421 4.3.2 Service not available, closing transmission channel")
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()


class _Controller(Controller):
    """A Controller that can bind port 0 and builds our SMTP subclass."""

    def __init__(self, harness: SmtpServer, **kwargs: Any) -> None:
        self._harness = harness
        super().__init__(_Handler(harness), **kwargs)

    def factory(self) -> SMTP:
        auth_required = bool(self.SMTP_kwargs.pop("_auth_required", False))
        smtp = _SMTP(self._harness, self.handler, **self.SMTP_kwargs)
        self.SMTP_kwargs["_auth_required"] = auth_required
        # Set after construction: aiosmtpd warns when AUTH is required without TLS, which is exactly
        # what plain mode with auth asks for (and pytest turns warnings into errors).
        smtp._auth_required = auth_required
        return smtp

    def _trigger_server(self) -> None:
        server = self.server
        assert isinstance(server, asyncio.Server)
        self.port = int(server.sockets[0].getsockname()[1])
        super()._trigger_server()  # type: ignore[no-untyped-call]


_CA_LOCK = threading.Lock()
_CA: trustme.CA | None = None


def _shared_ca() -> trustme.CA:
    """One throwaway CA per test process (key generation is the slow part)."""
    global _CA
    with _CA_LOCK:
        if _CA is None:
            _CA = trustme.CA()
        return _CA


class SmtpServer:
    """A threaded aiosmtpd server on 127.0.0.1 for tests; a context manager, or call start/stop.

    Args:
        mode: ``"plain"``, ``"starttls"`` or ``"tls"`` (see the module docstring).
        auth: ``(user, password)`` to require AUTH, or ``None``.
        workdir: where to write ``ca.pem``; a temporary directory (removed on stop) if ``None``.
        hostname: the name the server announces.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        mode: SmtpMode = "plain",
        auth: tuple[str, str] | None = None,
        workdir: Path | None = None,
        hostname: str = "smtp.standin.test",
    ) -> None:
        if mode not in ("plain", "starttls", "tls"):
            raise ValueError(f"unknown mode {mode!r}")
        self.mode: SmtpMode = mode
        self.auth = auth
        self.hostname = hostname
        self.outage: OutageMode | None = None
        self.messages: list[ReceivedMessage] = []
        """Messages accepted so far, in order (appended from the server thread)."""
        self.auth_attempts: list[tuple[str, bool]] = []
        """Every AUTH attempt as ``(user, succeeded)``."""
        self.port = 0
        self._lock = threading.Lock()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="smtp-standin-")
            workdir = Path(self._tmp.name)
        self._ca = _shared_ca()
        self.ca_pem = workdir / "ca.pem"
        """Path of the CA certificate (PEM) that signed the server certificate."""
        self._ca.cert_pem.write_to_path(str(self.ca_pem))
        self._server_cert = self._ca.issue_cert("127.0.0.1", "localhost")
        self._controller: _Controller | None = None

    # -- TLS helpers -----------------------------------------------------------------------------------

    def server_ssl_context(self) -> ssl.SSLContext:
        """The server-side TLS context (server certificate from the throwaway CA)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_cert.configure_cert(ctx)
        return ctx

    def client_ssl_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only the throwaway CA."""
        return ssl.create_default_context(cafile=str(self.ca_pem))

    # -- lifecycle -------------------------------------------------------------------------------------

    def _build(self, port: int) -> _Controller:
        kwargs: dict[str, Any] = {"hostname": self.host, "port": port, "server_hostname": self.hostname,
                                  "ready_timeout": 5.0}
        if self.mode == "starttls":
            kwargs["tls_context"] = self.server_ssl_context()
            kwargs["require_starttls"] = True
        elif self.mode == "tls":
            kwargs["ssl_context"] = self.server_ssl_context()
        if self.auth is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["_auth_required"] = True
            kwargs["auth_require_tls"] = self.mode == "starttls"
        return _Controller(self, **kwargs)

    def start(self) -> SmtpServer:
        """Start serving on an ephemeral port (the same port again after :meth:`stop`)."""
        if self._controller is not None:
            return self
        controller = self._build(self.port)
        controller.start()
        self._controller = controller
        self.port = controller.port
        return self

    def _stop_listener(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def stop(self) -> None:
        """Stop the server thread and remove the temporary directory."""
        self._stop_listener()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- faults ----------------------------------------------------------------------------------------

    def set_outage(self, mode: OutageMode = "refuse") -> None:
        """Simulate an outage until :meth:`recover`: refuse connections, greet 421, or 451 on MAIL."""
        self.outage = mode
        if mode == "refuse":
            self._stop_listener()

    def recover(self) -> None:
        """End the outage; the server listens on the same port again."""
        self.outage = None
        if self._controller is None:
            deadline = time.monotonic() + 5.0
            while True:
                try:
                    self.start()
                    return
                except OSError:
                    # The old listener's port may take a moment to be released.
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    # -- results ---------------------------------------------------------------------------------------

    def _received(self, message: ReceivedMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert self.auth is not None
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode("utf-8", "replace")
        ok = (user, auth_data.password.decode("utf-8", "replace")) == self.auth
        self.auth_attempts.append((user, ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    async def wait_for_messages(self, count: int = 1, seconds: float = 5.0) -> list[ReceivedMessage]:
        """Wait until at least ``count`` messages arrived; raise ``TimeoutError`` otherwise."""
        deadline = time.monotonic() + seconds
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"expected {count} messages, got {len(self.messages)}")
            await asyncio.sleep(0.02)
        return list(self.messages)


@contextlib.contextmanager
def running_smtp_server(mode: SmtpMode = "plain", auth: tuple[str, str] | None = None,
                        workdir: Path | None = None) -> Iterator[SmtpServer]:
    """Run an :class:`SmtpServer` for the duration of a ``with`` block."""
    server = SmtpServer(mode=mode, auth=auth, workdir=workdir)
    try:
        yield server.start()
    finally:
        server.stop()
