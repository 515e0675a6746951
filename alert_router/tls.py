"""HTTPS on the listener, the way Alertmanager's ``web.config.file`` (``tls_server_config``) does it.

``tls: {cert_file, key_file}`` serves HTTPS; with ``client_ca_file`` every client must present a
certificate signed by one of those CAs (mutual TLS; ``client_auth_type: VerifyClientCertIfGiven`` makes it
optional, verified when given). Relative paths are relative to the configuration file.

Certificates are re-read when they change, without a restart and without dropping connections: each new
connection (at most once a second) compares the files' modification time, size and inode with what was
loaded, and on a change builds a fresh :class:`ssl.SSLContext` that this and later handshakes use
(through the server context's ``sni_callback``, which OpenSSL calls for every ClientHello). Open
connections keep the certificate they started with. A renewal caught half written (a key that does not
match its certificate) is logged and the previous certificate served until the files are whole again.
"""

from __future__ import annotations

import os
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog
from pydantic import Field

from alert_router.configbase import ConfigModel

log = structlog.get_logger("alert_router.tls")

CHECK_EVERY = 1.0
"""Seconds between two looks at the certificate files (each new connection may look)."""


class TLSConfig(ConfigModel):
    """The ``tls:`` section: the listener's certificate, key and (for mutual TLS) the client CAs."""

    cert_file: str = Field(min_length=1)
    key_file: str = Field(min_length=1)
    client_ca_file: str = ""
    client_auth_type: Literal["RequireAndVerifyClientCert", "VerifyClientCertIfGiven"] = "RequireAndVerifyClientCert"
    min_version: Literal["TLS12", "TLS13"] = "TLS12"


@dataclass(frozen=True, slots=True)
class _Files:
    cert: Path
    key: Path
    client_ca: Path | None


def _stamp(files: _Files) -> tuple[tuple[int, int, int], ...]:
    """What identifies the current content of the files (a missing file stamps as zeros)."""
    out = []
    for path in (files.cert, files.key, files.client_ca):
        if path is None:
            continue
        try:
            st = os.stat(path)
        except OSError:
            out.append((0, 0, 0))
        else:
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


def _no_passphrase() -> bytes:
    """Refuse an encrypted key (OpenSSL would otherwise prompt on the terminal and block the service)."""
    raise ValueError("the key file is encrypted: give an unencrypted key (as Alertmanager needs too)")


class ServerTLS:
    """The listener's TLS: :attr:`context` goes to the server; it keeps serving the newest good certificate."""

    def __init__(self, cfg: TLSConfig, base_dir: Path, *, check_every: float = CHECK_EVERY) -> None:
        def resolve(value: str) -> Path:
            p = Path(value)
            return p if p.is_absolute() else base_dir / p

        self.cfg = cfg
        self.files = _Files(resolve(cfg.cert_file), resolve(cfg.key_file),
                            resolve(cfg.client_ca_file) if cfg.client_ca_file else None)
        self.check_every = check_every
        self.reloads = 0
        """How many times a changed certificate was loaded."""
        self._tried = _stamp(self.files)
        self._checked = time.monotonic()
        for path in (self.files.cert, self.files.key, self.files.client_ca):
            if path is not None and not path.is_file():
                raise FileNotFoundError(2, f"{path}: no such file", str(path))
        self.context = self._build()  # raises ssl.SSLError / OSError: the service must not start without it
        self.context.sni_callback = self._on_hello
        self._current = self.context

    @property
    def mutual(self) -> bool:
        """Whether clients are asked for a certificate."""
        return self.files.client_ca is not None

    def _build(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if self.cfg.min_version == "TLS13" else ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.files.cert, self.files.key, password=_no_passphrase)
        if self.files.client_ca is not None:
            ctx.load_verify_locations(cafile=self.files.client_ca)
            required = self.cfg.client_auth_type == "RequireAndVerifyClientCert"
            ctx.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
        return ctx

    def refresh(self) -> bool:
        """Load the files again if they changed since the last attempt; return whether a new context is in use."""
        stamp = _stamp(self.files)
        if stamp == self._tried:
            return False
        self._tried = stamp
        try:
            fresh = self._build()
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.warning("TLS certificate files changed but do not load; still serving the previous certificate",
                        cert_file=str(self.files.cert), error=str(exc))
            return False
        self._current = fresh
        self.reloads += 1
        log.info("TLS certificate reloaded", cert_file=str(self.files.cert), reloads=self.reloads)
        return True

    def _on_hello(self, conn: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, ctx: ssl.SSLContext) -> None:
        """OpenSSL's ClientHello callback: hand the handshake the newest good context."""
        now = time.monotonic()
        if now - self._checked >= self.check_every:
            self._checked = now
            self.refresh()
        if conn.context is not self._current:
            conn.context = self._current


def check_tls(cfg: TLSConfig, base_dir: Path) -> str | None:
    """Why the configured certificate, key or client CAs cannot be used, or ``None`` when they load."""
    try:
        tls = ServerTLS(cfg, base_dir)
    except ssl.SSLError as exc:
        return f"the certificate, key or client CA file does not load: {exc.reason or exc}"
    except OSError as exc:
        return f"cannot read the certificate files: {exc.strerror or exc}"
    except ValueError as exc:
        return str(exc)
    del tls
    return None
