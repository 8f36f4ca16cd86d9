"""The relay logs in with CRAM-MD5 when that is the only mechanism an
upstream offers (issue 4: PLAIN, LOGIN or CRAM-MD5 as the server offers
them), and a wrong password there defers the mail instead of sending it
unauthenticated."""

import hashlib
import hmac

import pytest
from aiosmtpd.smtp import AuthResult

import helpers
from helpers import LOCALHOST, send_message

USER = "relay-user"
PASSWORD = "cram-secret"
CHALLENGE = b"<1795316172.4242@upstream.test>"


class CramOnlyUpstream(helpers.Upstream):
    """A recording aiosmtpd upstream offering AUTH CRAM-MD5 and nothing else,
    and refusing MAIL before a login."""

    def __init__(self, password=PASSWORD):
        super().__init__()
        self.password = password
        self.logins = []            # (user, ok)

    def _start_once(self):
        from aiosmtpd.controller import Controller
        upstream = self

        class Handler(helpers._RecordingHandler):
            async def auth_CRAM__MD5(self, server, args):
                response = await server.challenge_auth(CHALLENGE)
                user, _, digest = response.decode().rpartition(" ")
                want = hmac.new(upstream.password.encode(), CHALLENGE,
                    hashlib.md5).hexdigest()
                ok = user == USER and hmac.compare_digest(digest, want)
                upstream.logins.append((user, ok))
                return AuthResult(success=ok, handled=False)

        self._controller = Controller(Handler(self), hostname=LOCALHOST,
            port=self.port, server_hostname=self.hostname, decode_data=False,
            auth_required=True, auth_require_tls=False,
            auth_exclude_mechanism=["PLAIN", "LOGIN"], ready_timeout=5.0)
        self._controller.start()


# CRAM-MD5 keeps the password off the wire, so this upstream needs no TLS.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Requiring AUTH while not requiring TLS:UserWarning")


def cram_proxy(make_proxy, port, password):
    return make_proxy(config={"retrymin": 60}, accounts={"default": {
        "smtphost": LOCALHOST, "smtpport": port,
        "smtpusername": USER, "smtppassword": password}})


def test_relay_logs_in_with_cram_md5_when_it_is_all_the_server_offers(
        make_proxy):
    upstream = CramOnlyUpstream()
    upstream.start()
    try:
        proxy = cram_proxy(make_proxy, upstream.port, PASSWORD)
        send_message(proxy.port, "a@example.com", ["b@example.org"],
            b"Subject: cram\r\n\r\nbody\r\n")
        upstream.wait_for_messages(1)
        assert upstream.logins == [(USER, True)]
    finally:
        upstream.stop()


def test_wrong_cram_md5_password_defers_and_sends_nothing(make_proxy):
    upstream = CramOnlyUpstream()
    upstream.start()
    try:
        proxy = cram_proxy(make_proxy, upstream.port, "wrong")
        send_message(proxy.port, "a@example.com", ["b@example.org"],
            b"Subject: cram\r\n\r\nbody\r\n")
        helpers.wait_until(lambda: upstream.logins, 5.0, "a login attempt")
        helpers.wait_until(lambda: "deferred" in proxy.log_text(), 5.0,
            "a deferral")
        assert upstream.logins == [(USER, False)]
        assert upstream.messages == []
        assert len(proxy.queued()) == 1
    finally:
        upstream.stop()
