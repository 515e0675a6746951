"""HTTPS on the listener (``tls:``), mutual TLS with ``client_ca_file``, and certificates re-read when they change.

Certificates come from CAs made in the test (trustme). The server is the real application behind aiohttp's
TCPSite with :class:`~alert_router.tls.ServerTLS`'s context, as ``alert-router serve`` runs it; the
clients are aiohttp sessions that trust only the CA under test.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web

from alert_router.app import build_app
from alert_router.cli import main as cli_main
from alert_router.config import load
from alert_router.tls import ServerTLS
from tests.helpers import write_config


class Certs:
    """A server CA with a certificate for 127.0.0.1, and a separate client CA, written under ``tmp``."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "tls"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.server_ca = trustme.CA()
        self.client_ca = trustme.CA()
        self.issue_server(self.server_ca)
        self.server_ca.cert_pem.write_to_path(str(self.dir / "server-ca.pem"))
        self.client_ca.cert_pem.write_to_path(str(self.dir / "client-ca.pem"))

    def issue_server(self, ca: trustme.CA) -> None:
        """(Re)write the server's certificate and key, issued by ``ca``."""
        cert = ca.issue_cert("127.0.0.1", "localhost")
        cert.cert_chain_pems[0].write_to_path(str(self.dir / "server.crt"))
        for extra in cert.cert_chain_pems[1:]:
            extra.write_to_path(str(self.dir / "server.crt"), append=True)
        cert.private_key_pem.write_to_path(str(self.dir / "server.key"))

    def config(self, *, mutual: bool = False, extra: str = "") -> str:
        ca = f", client_ca_file: {self.dir / 'client-ca.pem'}" if mutual else ""
        return f"tls: {{cert_file: {self.dir / 'server.crt'}, key_file: {self.dir / 'server.key'}{ca}{extra}}}\n"

    def client_files(self, ca: trustme.CA, name: str = "alertmanager") -> tuple[Path, Path]:
        """Write a client certificate issued by ``ca`` and its key; return their paths."""
        cert = ca.issue_cert(f"{name}@test.invalid")
        cert_path, key_path = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        cert.cert_chain_pems[0].write_to_path(str(cert_path))
        cert.private_key_pem.write_to_path(str(key_path))
        return cert_path, key_path

    def client(self, trust: trustme.CA | None = None, cert_from: trustme.CA | None = None) -> ssl.SSLContext:
        """A client context trusting ``trust`` (the server CA by default), presenting a cert from ``cert_from``."""
        ctx = ssl.create_default_context()
        (trust or self.server_ca).configure_trust(ctx)
        if cert_from is not None:
            cert_from.issue_cert("alertmanager@test.invalid").configure_cert(ctx)
        return ctx


@asynccontextmanager
async def serving(config: Path) -> AsyncIterator[tuple[str, ServerTLS]]:
    """Run the app over HTTPS on an ephemeral loopback port; yield its base URL and its TLS."""
    cfg = load(config, {})
    assert cfg.settings.tls is not None
    tls = ServerTLS(cfg.settings.tls, cfg.base_dir, check_every=0)
    runner = web.AppRunner(build_app(cfg))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.context)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"https://127.0.0.1:{port}", tls
    finally:
        await runner.cleanup()


async def get(url: str, ctx: ssl.SSLContext | bool) -> int:
    async with aiohttp.ClientSession() as s, s.get(url, ssl=ctx) as r:
        await r.read()
        return r.status


async def test_https_with_a_certificate_from_the_config(tmp_path: Path) -> None:
    certs = Certs(tmp_path)
    async with serving(write_config(tmp_path, certs.config())) as (url, tls):
        assert not tls.mutual
        assert await get(url + "/healthz", certs.client()) == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await get(url + "/healthz", certs.client(trust=trustme.CA()))  # a CA the server is not from
        with pytest.raises(aiohttp.ClientError):
            await get(url.replace("https:", "http:") + "/healthz", False)  # plain HTTP is not served


async def test_mutual_tls_requires_a_client_certificate_from_the_client_ca(tmp_path: Path) -> None:
    certs = Certs(tmp_path)
    async with serving(write_config(tmp_path, certs.config(mutual=True))) as (url, tls):
        assert tls.mutual
        assert await get(url + "/healthz", certs.client(cert_from=certs.client_ca)) == 200
        with pytest.raises(aiohttp.ClientError):
            await get(url + "/healthz", certs.client())  # no client certificate
        with pytest.raises(aiohttp.ClientError):
            await get(url + "/healthz", certs.client(cert_from=trustme.CA()))  # one from another CA


async def test_client_certificates_may_be_optional_but_are_verified_when_given(tmp_path: Path) -> None:
    certs = Certs(tmp_path)
    cfg = write_config(tmp_path, certs.config(mutual=True, extra=", client_auth_type: VerifyClientCertIfGiven"))
    async with serving(cfg) as (url, _):
        assert await get(url + "/healthz", certs.client()) == 200
        assert await get(url + "/healthz", certs.client(cert_from=certs.client_ca)) == 200
        with pytest.raises(aiohttp.ClientError):
            await get(url + "/healthz", certs.client(cert_from=trustme.CA()))


async def test_a_renewed_certificate_is_served_to_new_connections_without_a_restart(tmp_path: Path) -> None:
    certs = Certs(tmp_path)
    async with serving(write_config(tmp_path, certs.config())) as (url, tls):
        assert await get(url + "/healthz", certs.client()) == 200
        renewed_by = trustme.CA()
        certs.issue_server(renewed_by)  # cert-manager renews: new files in place
        assert await get(url + "/healthz", certs.client(trust=renewed_by)) == 200
        assert tls.reloads == 1
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await get(url + "/healthz", certs.client())  # the old certificate is no longer served


async def test_a_half_written_renewal_keeps_the_previous_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    certs = Certs(tmp_path)
    async with serving(write_config(tmp_path, certs.config())) as (url, tls):
        renewed_by = trustme.CA()
        new = renewed_by.issue_cert("127.0.0.1")
        new.private_key_pem.write_to_path(str(certs.dir / "server.key"))  # the key arrives before its certificate
        assert await get(url + "/healthz", certs.client()) == 200, "still the previous certificate"
        assert tls.reloads == 0
        assert "do not load" in capsys.readouterr().out
        new.cert_chain_pems[0].write_to_path(str(certs.dir / "server.crt"))
        assert await get(url + "/healthz", certs.client(trust=renewed_by)) == 200
        assert tls.reloads == 1


async def test_a_replaced_client_ca_applies_to_new_connections(tmp_path: Path) -> None:
    certs = Certs(tmp_path)
    async with serving(write_config(tmp_path, certs.config(mutual=True))) as (url, _):
        old_clients = certs.client_ca
        assert await get(url + "/healthz", certs.client(cert_from=old_clients)) == 200
        certs.client_ca = trustme.CA()
        certs.client_ca.cert_pem.write_to_path(str(certs.dir / "client-ca.pem"))
        assert await get(url + "/healthz", certs.client(cert_from=certs.client_ca)) == 200
        with pytest.raises(aiohttp.ClientError):
            await get(url + "/healthz", certs.client(cert_from=old_clients))


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda d: (d / "server.key").unlink(), "server.key: no such file"),
        (lambda d: (d / "server.key").write_text(trustme.CA().issue_cert("x").private_key_pem.bytes().decode()),
         "does not load"),
        (lambda d: (d / "client-ca.pem").write_text("not a certificate\n"), "does not load"),
    ],
    ids=["missing key", "key of another certificate", "client CA not PEM"],
)
def test_check_reports_unusable_tls_files_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], break_it: Any, message: str
) -> None:
    certs = Certs(tmp_path)
    cfg = write_config(tmp_path, certs.config(mutual=True))
    assert cli_main(["check", "--config", str(cfg)]) == 0
    break_it(certs.dir)
    capsys.readouterr()
    assert cli_main(["check", "--config", str(cfg)]) == 1
    out = capsys.readouterr().out
    line = next(i for i, text in enumerate(cfg.read_text().splitlines(), 1) if text.startswith("tls:"))
    assert f"{cfg}:{line}: tls: " in out and message in out
