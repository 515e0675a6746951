"""The SMTP harness is a real server: aiosmtplib talks to it in plain, STARTTLS and implicit TLS modes."""

from __future__ import annotations

import ssl
from email.message import EmailMessage

import aiosmtplib
import pytest

from tests.standins.chat_fixtures import SmtpServerFactory
from tests.standins.smtp import SmtpServer

# aiosmtplib's close() after a failed TLS session does not wait for the transport to finish closing, so the
# socket may be collected after the test's loop is gone; that is the client library's, not the server's, leak.
pytestmark = pytest.mark.filterwarnings("ignore:unclosed:ResourceWarning")


def make_message(subject: str = "FIRING: DiskFull") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "alerts@example.test"
    msg["To"] = "oncall@example.test"
    msg["Subject"] = subject
    msg.set_content("disk is full")
    msg.add_alternative("<p>disk is <b>full</b></p>", subtype="html")
    return msg


async def test_plain_delivery_is_parsed(smtp_server: SmtpServer) -> None:
    await aiosmtplib.send(make_message(), hostname=smtp_server.host, port=smtp_server.port, timeout=5,
                          start_tls=False)
    [received] = await smtp_server.wait_for_messages(1)
    assert received.mail_from == "alerts@example.test"
    assert received.rcpt_tos == ["oncall@example.test"]
    assert received.message["Subject"] == "FIRING: DiskFull"
    assert received.message.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in received.message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert received.tls is False


async def test_starttls_with_verified_ca(smtp_server_factory: SmtpServerFactory) -> None:
    server = smtp_server_factory("starttls")
    ctx = ssl.create_default_context(cafile=str(server.ca_pem))
    await aiosmtplib.send(make_message(), hostname=server.host, port=server.port, start_tls=True,
                          tls_context=ctx, timeout=5)
    [received] = await server.wait_for_messages(1)
    assert received.tls is True


async def test_starttls_required_before_mail(smtp_server_factory: SmtpServerFactory) -> None:
    server = smtp_server_factory("starttls")
    with pytest.raises(aiosmtplib.SMTPResponseException) as err:
        await aiosmtplib.send(make_message(), hostname=server.host, port=server.port, start_tls=False,
                              timeout=5)
    assert err.value.code == 530
    assert server.messages == []


async def test_starttls_untrusted_ca_is_refused(smtp_server_factory: SmtpServerFactory) -> None:
    server = smtp_server_factory("starttls")
    with pytest.raises(ssl.SSLCertVerificationError):
        # The system trust store does not know the throwaway CA.
        await aiosmtplib.send(make_message(), hostname=server.host, port=server.port, start_tls=True,
                              tls_context=ssl.create_default_context(), timeout=5)
    assert server.messages == []


async def test_implicit_tls(smtp_server_factory: SmtpServerFactory) -> None:
    server = smtp_server_factory("tls", auth=("alice", "pw"))
    await aiosmtplib.send(make_message(), hostname=server.host, port=server.port, use_tls=True,
                          tls_context=server.client_ssl_context(), username="alice", password="pw", timeout=5)
    [received] = await server.wait_for_messages(1)
    assert received.tls is True
    assert received.auth_user == "alice"


async def test_auth_good_and_bad(smtp_server_factory: SmtpServerFactory) -> None:
    server = smtp_server_factory("starttls", auth=("alice", "s3cret"))
    ctx = server.client_ssl_context()
    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as err:
        await aiosmtplib.send(make_message(), hostname=server.host, port=server.port, start_tls=True,
                              tls_context=ctx, username="alice", password="wrong", timeout=5)
    assert err.value.code == 535
    assert server.messages == []
    await aiosmtplib.send(make_message(), hostname=server.host, port=server.port, start_tls=True,
                          tls_context=ctx, username="alice", password="s3cret", timeout=5)
    [received] = await server.wait_for_messages(1)
    assert received.auth_user == "alice"
    # aiosmtplib tries each offered mechanism (PLAIN, LOGIN) before giving up on a wrong password.
    *failed, last = server.auth_attempts
    assert failed
    assert all(attempt == ("alice", False) for attempt in failed)
    assert last == ("alice", True)


async def test_auth_required_refuses_anonymous_mail(smtp_server_factory: SmtpServerFactory) -> None:
    server = smtp_server_factory("plain", auth=("alice", "pw"))
    with pytest.raises(aiosmtplib.SMTPResponseException) as err:
        await aiosmtplib.send(make_message(), hostname=server.host, port=server.port, start_tls=False,
                              timeout=5)
    assert err.value.code == 530
    await aiosmtplib.send(make_message(), hostname=server.host, port=server.port, start_tls=False,
                          username="alice", password="pw", timeout=5)
    assert len(await server.wait_for_messages(1)) == 1


async def test_refused_connection_outage_then_recovery(smtp_server: SmtpServer) -> None:
    port = smtp_server.port
    smtp_server.set_outage("refuse")
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await aiosmtplib.send(make_message(), hostname=smtp_server.host, port=port, start_tls=False, timeout=2)
    smtp_server.recover()
    assert smtp_server.port == port
    await aiosmtplib.send(make_message(), hostname=smtp_server.host, port=port, start_tls=False, timeout=5)
    assert len(await smtp_server.wait_for_messages(1)) == 1


async def test_greeting_421_outage_then_recovery(smtp_server: SmtpServer) -> None:
    smtp_server.set_outage("greeting")
    with pytest.raises(aiosmtplib.SMTPConnectResponseError) as err:
        await aiosmtplib.send(make_message(), hostname=smtp_server.host, port=smtp_server.port,
                              start_tls=False, timeout=2)
    assert err.value.code == 421
    smtp_server.recover()
    await aiosmtplib.send(make_message(), hostname=smtp_server.host, port=smtp_server.port, start_tls=False,
                          timeout=5)
    assert len(await smtp_server.wait_for_messages(1)) == 1


async def test_tempfail_outage_answers_451_then_recovers(smtp_server: SmtpServer) -> None:
    smtp_server.set_outage("tempfail")
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as err:
        await aiosmtplib.send(make_message(), hostname=smtp_server.host, port=smtp_server.port,
                              start_tls=False, timeout=2)
    assert err.value.code == 451
    assert smtp_server.messages == []
    smtp_server.recover()
    await aiosmtplib.send(make_message(), hostname=smtp_server.host, port=smtp_server.port, start_tls=False,
                          timeout=5)
    assert len(await smtp_server.wait_for_messages(1)) == 1


def test_context_manager_stops_and_cleans_up() -> None:
    with SmtpServer() as server:
        ca = server.ca_pem
        assert ca.exists()
        assert server.port > 0
    assert not ca.exists()
