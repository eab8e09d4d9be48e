"""A local SMTP server for the alert tests (aiosmtpd on 127.0.0.1, a free port): it keeps
every mail it accepts, and accepts only the login and password it was given (AUTH over
plain SMTP, as a test server may)."""

from __future__ import annotations

import email
import html
import json
import re
import socket
import threading
import time
from dataclasses import dataclass
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: Message
    raw: bytes

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def body(self) -> str:
        """Every text part, decoded."""
        parts = []
        for part in self.message.walk():
            if part.get_content_maintype() == "text":
                payload = part.get_payload(decode=True) or b""
                parts.append(payload.decode(part.get_content_charset() or "utf-8"))
        return "\n".join(parts)

    @property
    def text(self) -> str:
        """The body as a reader sees it: markup gone, entities decoded."""
        return html.unescape(re.sub(r"<[^>]+>", "", self.body))


class SmtpServer:
    def __init__(self, login: str = "alerts", password: str = "smtp-pw-unset") -> None:
        self.login, self.password = login, password
        self.port = _free_port()
        self.mails: list[Mail] = []
        self._lock = threading.Lock()
        self.controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self._authenticate,
            auth_require_tls=False,
            # PLAIN only: after a refused PLAIN, smtplib's LOGIN and aiosmtpd's disagree
            # on the first challenge and the client waits for its timeout.
            auth_exclude_mechanism=["LOGIN"],
        )

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (self.login, self.password)
        return AuthResult(success=ok, handled=False)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's)
        raw = envelope.original_content or envelope.content
        mail = Mail(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            message=email.message_from_bytes(raw),
            raw=raw,
        )
        with self._lock:
            self.mails.append(mail)
        return "250 Message accepted for delivery"

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def received(self) -> list[Mail]:
        with self._lock:
            return list(self.mails)

    def wait_for(self, predicate, timeout: float, what: str = "a mail") -> list[Mail]:
        """The mails that match ``predicate``, once there is at least one (else an
        AssertionError naming what did arrive)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.received() if predicate(m)]
            if found:
                return found
            if time.monotonic() > deadline:
                subjects = [m.subject for m in self.received()]
                raise AssertionError(f"no {what} within {timeout:.0f} s; received: {subjects}")
            time.sleep(0.5)

    def connection(self, to: str, from_email: str, **extra: Any) -> dict[str, Any]:
        """An Airflow smtp connection (JSON form) to this server: plain SMTP, no TLS."""
        return {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": self.port,
            "login": self.login,
            "password": self.password,
            "extra": {
                "to": to,
                "from_email": from_email,
                "disable_tls": True,
                "disable_ssl": True,
                "timeout": 10,
                "retry_limit": 0,
                **extra,
            },
        }

    def connection_json(self, to: str, from_email: str, **extra: Any) -> str:
        return json.dumps(self.connection(to, from_email, **extra))
