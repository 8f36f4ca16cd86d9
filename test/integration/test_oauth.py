"""OAuth 2.0 upstream login (issue 6): XOAUTH2 with tokens that refresh
themselves, and the first authorisation by smtpproxyctl oauth.

Every test runs the real daemon (conftest.make_proxy) and smtpproxyctl
against a fake provider and an XOAUTH2 upstream (oauthserver), both on
127.0.0.1 with certificates of a test CA made by openssl (tlsca).  The
token file is read and written here as the daemon keeps it: one JSON
object with access_token, expires_at, refresh_token, scope and
refreshed_at.
"""

import base64
import http.client
import json
import os
import re
import ssl
import stat
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

import helpers
import tlsca
from helpers import LOCALHOST, send_message, wait_until
from oauthserver import TokenServer, XOAuth2Upstream
from upstreams import ScriptedUpstream

CTL = os.environ.get("SMTPPROXYCTL") or str(helpers.REPO_ROOT / "smtpproxyd" / "smtpproxyctl")
USER = "app@example.com"
RCPT = "someone@example.org"
SCOPE = "https://mail.example/send offline_access"
RELAY_CONFIG = {
    "retrymin": 1,
    "retrymax": 2,
    "relaytimeout": 10,
    "debuglevel": 2,
}
CTL_TIMEOUT = 30.0
DELIVERY_TIMEOUT = 15.0


def message(subject="oauth test"):
    return (f"From: {USER}\r\nTo: {RCPT}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{time.time_ns()}@client.test>\r\n\r\nHello.\r\n")


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """pki - a test CA and the certificate both fake servers present"""
    folder = tmp_path_factory.mktemp("oauth-pki")
    ca = tlsca.make_ca(folder)
    return SimpleNamespace(ca=ca, cert=tlsca.make_server_cert(ca, folder=folder))


@pytest.fixture
def tokens(pki):
    server = TokenServer(pki.cert, scope=SCOPE).start()
    yield server
    server.stop()


@pytest.fixture
def xo_upstream(pki, tokens):
    up = XOAuth2Upstream(pki.cert, tokens,
        users={USER, "a1@example.com", "a2@example.com", "a3@example.com"})
    up.start()
    yield up
    up.stop()


def xo_account(pki, tokens, upstream, user=USER, **extra):
    """xo_account - the keys of an xoauth2 account at the fake provider"""
    account = {
        "smtphost": LOCALHOST,
        "smtpport": upstream.port,
        "smtpsecurity": "tls",
        "tlscafile": str(pki.ca.cert),
        "localhostname": "relay.example.org",
        "smtpusername": user,
        "smtpauth": "xoauth2",
        "oauthprovider": "custom",
        "oauthflow": "device",
        "oauthclientid": tokens.client_id,
        "oauthtokenurl": tokens.url("/token"),
        "oauthdeviceurl": tokens.url("/devicecode"),
        "oauthauthurl": tokens.url("/authorize"),
        "oauthscope": SCOPE,
    }
    account.update(extra)
    return account


@pytest.fixture
def start_proxy(make_proxy, pki, tokens, xo_upstream):
    """start_proxy(accounts=None, config=None, start=True, **keys) -> Daemon

    Without accounts: one account USER with the keys of xo_account, and
    keys on top.
    """
    def start(accounts=None, config=None, start=True, **keys):
        if accounts is None:
            accounts = {USER: xo_account(pki, tokens, xo_upstream, **keys)}
        settings = dict(RELAY_CONFIG)
        settings.update(config or {})
        daemon = make_proxy(config=settings, logging={"level": "DEBUG"},
            accounts=accounts, start=start)
        daemon.token_file = lambda name=USER: Path(daemon.msgdir) / "oauth" / f"{name}.json"
        return daemon
    return start


# ---------------------------------------------------------------- helpers

def write_store(path, access, refresh, expires_at, refreshed_at=None):
    """write_store - a token file as the daemon writes it"""
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = {"access_token": access, "token_type": "Bearer",
        "expires_at": int(expires_at), "refresh_token": refresh,
        "scope": SCOPE, "refreshed_at": int(refreshed_at or time.time())}
    path.write_text(json.dumps(data))
    os.chmod(path, 0o600)


def read_store(path):
    return json.loads(Path(path).read_text())


def ca_context(pki):
    return ssl.create_default_context(cafile=str(pki.ca.cert))


def approve(tokens, pki, user_code):
    """approve - the user enters the code at the provider"""
    req = urllib.request.Request(tokens.url("/approve"),
        data=urllib.parse.urlencode({"user_code": user_code}).encode())
    with urllib.request.urlopen(req, context=ca_context(pki), timeout=5) as r:
        assert r.status == 200


def login(pki, url):
    """login - open the provider's login page; the Location it redirects to"""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPSConnection(parts.hostname, parts.port,
        context=ca_context(pki), timeout=5)
    try:
        conn.request("GET", f"{parts.path}?{parts.query}")
        resp = conn.getresponse()
        assert resp.status == 302, f"login page answered {resp.status}: {resp.read()!r}"
        return resp.getheader("Location")
    finally:
        conn.close()


class Ctl:
    """smtpproxyctl running in the background; its output collected."""

    def __init__(self, config_path, *args):
        self.proc = subprocess.Popen([CTL, "-c", str(config_path), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True)
        self._out, self._err = [], []
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self._out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream, into):
        for line in iter(stream.readline, ""):
            into.append(line)

    @property
    def out(self):
        return "".join(self._out)

    @property
    def err(self):
        return "".join(self._err)

    def wait_for(self, pattern, timeout=CTL_TIMEOUT):
        """wait_for - the first match of pattern in stdout"""
        regex = re.compile(pattern, re.S)

        def found():
            if self.proc.poll() is not None and not regex.search(self.out):
                raise AssertionError(f"smtpproxyctl ended ({self.proc.returncode}):"
                    f"\n{self.out}\n{self.err}")
            return regex.search(self.out)
        return wait_until(found, timeout, f"{pattern!r} from smtpproxyctl")

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout=CTL_TIMEOUT):
        """finish - its exit status, stdin closed"""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(5)
            raise AssertionError(f"smtpproxyctl hung:\n{self.out}\n{self.err}")
        for t in self._threads:
            t.join(5)
        return rc


def run_ctl(daemon, *args, timeout=CTL_TIMEOUT):
    return subprocess.run([CTL, "-c", str(daemon.config_path), *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def device_authorise(daemon, tokens, pki, account=USER):
    """device_authorise - smtpproxyctl oauth by device code, approved"""
    ctl = Ctl(daemon.config_path, "oauth", account)
    m = ctl.wait_for(r"open\s+(\S+)\s+in a browser.*?enter the code\s+(\S+)")
    assert m.group(1) == tokens.url("/device")
    approve(tokens, pki, m.group(2))
    rc = ctl.finish()
    assert rc == 0, f"smtpproxyctl oauth failed:\n{ctl.out}\n{ctl.err}"
    return ctl


def assert_no_secret_in(text, secrets_):
    for secret in secrets_:
        if not secret:
            continue
        assert secret not in text, "a secret reached a log line"
        # a recognisable piece of it is just as bad
        assert secret[:24] not in text, "part of a secret reached a log line"


def sasl_strings(user, tokens_):
    """sasl_strings - the XOAUTH2 responses those tokens would make"""
    return [base64.b64encode(f"user={user}\x01auth=Bearer {t}\x01\x01".encode()).decode()
        for t in tokens_]


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# ---------------------------------------------------------------- first authorisation

def test_device_code_first_authorisation_stores_tokens_privately(start_proxy, tokens, pki):
    daemon = start_proxy(start=False)
    ctl = device_authorise(daemon, tokens, pki)

    store = read_store(daemon.token_file())
    assert store["access_token"] == tokens.issued_access[-1]
    assert store["refresh_token"] == tokens.issued_refresh[-1]
    assert store["expires_at"] > time.time() + 3000
    assert store["scope"] == SCOPE
    # authorization_pending was answered until the approval came
    assert tokens.count("urn:ietf:params:oauth:grant-type:device_code") >= 1
    assert "is authorised" in ctl.out
    assert mode(daemon.token_file().parent) == 0o700
    assert mode(daemon.token_file()) == 0o600
    assert mode(str(daemon.token_file()) + ".lock") == 0o600
    assert not Path(str(daemon.token_file()) + ".needauth").exists()
    assert_no_secret_in(ctl.out + ctl.err, tokens.issued_access + tokens.issued_refresh)


def test_device_code_polling_waits_longer_after_slow_down(start_proxy, tokens, pki):
    daemon = start_proxy(start=False)
    tokens.fail = ["slow_down"]
    device_authorise(daemon, tokens, pki)

    polls = [t for path, grant, t in tokens.requests
        if grant == "urn:ietf:params:oauth:grant-type:device_code"]
    assert len(polls) >= 2
    # interval 1 s, then 1 + 5 s after slow_down (RFC 8628 3.5)
    assert polls[1] - polls[0] >= 5.5


def test_device_code_expired_before_login_fails_cleanly(start_proxy, tokens):
    daemon = start_proxy(start=False)
    tokens.fail = ["authorization_pending", "expired_token"]
    result = run_ctl(daemon, "oauth", USER)

    assert result.returncode == 1
    assert "the code expired before the login was finished" in result.stderr
    assert not daemon.token_file().exists()


def test_auth_code_with_pkce_through_the_loopback_redirect(start_proxy, tokens, pki):
    daemon = start_proxy(start=False, oauthflow="authcode")
    ctl = Ctl(daemon.config_path, "oauth", USER)
    m = ctl.wait_for(r"(https://\S+/authorize\?\S+)")
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(m.group(1)).query))
    assert params["code_challenge_method"] == "S256"
    assert params["redirect_uri"].startswith("http://127.0.0.1:")
    assert params["scope"] == SCOPE

    location = login(pki, m.group(1))
    with urllib.request.urlopen(location, timeout=5) as page:
        assert page.status == 200
        assert b"received the authorisation" in page.read()
    assert ctl.finish() == 0, f"{ctl.out}\n{ctl.err}"
    assert read_store(daemon.token_file())["access_token"] == tokens.issued_access[-1]


def test_auth_code_takes_the_redirected_address_pasted_and_checks_state(start_proxy, tokens, pki):
    daemon = start_proxy(start=False, oauthflow="authcode")
    ctl = Ctl(daemon.config_path, "oauth", USER)
    m = ctl.wait_for(r"(https://\S+/authorize\?\S+)")
    location = login(pki, m.group(1))

    forged = re.sub(r"state=[^&]*", "state=forged", location)
    ctl.send(forged)
    ctl.wait_for(r"another state: ignored")
    assert ctl.proc.poll() is None
    ctl.send(location)
    assert ctl.finish() == 0, f"{ctl.out}\n{ctl.err}"
    assert read_store(daemon.token_file())["refresh_token"] == tokens.issued_refresh[-1]
    assert tokens.count("authorization_code") == 1


def test_client_credentials_need_no_interaction_and_deliver(start_proxy, tokens, xo_upstream):
    daemon = start_proxy(oauthflow="clientcredentials",
        oauthclientsecret=tokens.client_secret,
        oauthscope="https://mail.example/.default")
    result = run_ctl(daemon, "oauth", USER)
    assert result.returncode == 0, result.stderr
    store = read_store(daemon.token_file())
    assert store["refresh_token"] is None

    send_message(daemon.port, USER, [RCPT], message())
    xo_upstream.wait_for_messages(1, timeout=DELIVERY_TIMEOUT)
    assert xo_upstream.good_logins[-1][1] == store["access_token"]
    assert_no_secret_in(daemon.log_text(), [tokens.client_secret, store["access_token"]])


# ---------------------------------------------------------------- delivery

def test_4kb_token_is_delivered_after_the_334(start_proxy, tokens, xo_upstream):
    tokens.access_size = 4096
    access, refresh = tokens.issue()
    daemon = start_proxy(start=False)
    write_store(daemon.token_file(), access, refresh, time.time() + 3600)
    daemon.start()

    send_message(daemon.port, USER, [RCPT], message())
    xo_upstream.wait_for_messages(1, timeout=DELIVERY_TIMEOUT)
    user, token, ok, initial = xo_upstream.logins[-1]
    assert (user, token, ok) == (USER, access, True)
    assert len(token) == 4096
    # the AUTH line would exceed 512 octets: the token followed the 334
    assert not initial
    assert tokens.count("refresh_token") == 0


def test_expiry_refreshes_once_under_concurrent_deliveries(start_proxy, pki, tokens,
        xo_upstream, tmp_path):
    shared = tmp_path / "shared" / "token.json"
    access, refresh = tokens.issue()
    write_store(shared, access, refresh, time.time() + 60)
    tokens.delay = 1.5
    names = ["a1@example.com", "a2@example.com", "a3@example.com"]
    accounts = {n: xo_account(pki, tokens, xo_upstream, user=n, oauthtokenfile=str(shared))
        for n in names}
    daemon = start_proxy(accounts=accounts, config={"relayprocesses": 4})

    for n in names:
        send_message(daemon.port, n, [RCPT], message(n))
    xo_upstream.wait_for_messages(3, timeout=DELIVERY_TIMEOUT)

    assert tokens.count("refresh_token") == 1
    new = read_store(shared)
    assert new["access_token"] == tokens.issued_access[-1]
    assert {t for _, t, ok, _ in xo_upstream.logins if ok} == {new["access_token"]}
    assert sorted(u for u, _, ok, _ in xo_upstream.logins if ok) == names


def test_rotated_refresh_token_survives_a_restart(start_proxy, tokens, xo_upstream):
    access, r1 = tokens.issue()
    daemon = start_proxy(start=False)
    write_store(daemon.token_file(), access, r1, time.time() - 10)
    daemon.start()
    send_message(daemon.port, USER, [RCPT], message("one"))
    xo_upstream.wait_for_messages(1, timeout=DELIVERY_TIMEOUT)
    r2 = read_store(daemon.token_file())["refresh_token"]
    assert r2 != r1 and r2 == tokens.issued_refresh[-1]

    daemon.stop()
    store = read_store(daemon.token_file())
    store["expires_at"] = 0
    daemon.token_file().write_text(json.dumps(store))
    daemon.start()
    send_message(daemon.port, USER, [RCPT], message("two"))
    xo_upstream.wait_for_messages(2, timeout=DELIVERY_TIMEOUT)

    # r1 was dead after the first refresh: only r2 can have worked
    assert tokens.count("refresh_token") == 2
    assert read_store(daemon.token_file())["refresh_token"] == tokens.issued_refresh[-1]
    assert "invalid_grant" not in daemon.log_text()


def test_error_challenge_refreshes_once_and_retries_on_a_new_connection(start_proxy,
        tokens, xo_upstream):
    stale, refresh = tokens.issue()
    tokens.revoke(stale)
    daemon = start_proxy(start=False)
    write_store(daemon.token_file(), stale, refresh, time.time() + 3600)
    daemon.start()

    send_message(daemon.port, USER, [RCPT], message())
    xo_upstream.wait_for_messages(1, timeout=DELIVERY_TIMEOUT)
    fresh = read_store(daemon.token_file())["access_token"]
    assert [(t, ok) for _, t, ok, _ in xo_upstream.logins] == [(stale, False), (fresh, True)]
    assert tokens.count("refresh_token") == 1
    assert xo_upstream.connections == 2
    assert len(xo_upstream.messages) == 1
    # The spool file goes once the session has ended (after QUIT).
    wait_until(lambda: daemon.queued() == [], DELIVERY_TIMEOUT, "an empty queue")


def test_invalid_grant_keeps_mail_until_smtpproxyctl_oauth(start_proxy, tokens, pki,
        xo_upstream):
    # a long back-off: only smtpproxyctl oauth can make the mail go soon
    daemon = start_proxy(start=False, config={"retrymin": 600, "retrymax": 600})
    write_store(daemon.token_file(), "expired-token", "rt.revoked-long-ago", time.time() - 10)
    daemon.start()

    queue_id = send_message(daemon.port, USER, [RCPT], message())
    mark = Path(str(daemon.token_file()) + ".needauth")
    wait_until(mark.exists, DELIVERY_TIMEOUT, "the account to be marked")
    wait_until(lambda: "deferred" in daemon.log_text(), DELIVERY_TIMEOUT, "a deferral")
    log = daemon.log_text()
    assert f"smtpproxyctl -c {daemon.config_path} oauth {USER}" in log
    assert daemon.find_queued(queue_id) is not None
    assert daemon.spool_names("failed") == []
    assert xo_upstream.logins == []

    status = run_ctl(daemon, "status")
    assert re.search(rf"oauth \[{re.escape(USER)}\]: NEEDS AUTHORISATION \(invalid_grant",
        status.stdout), status.stdout

    ctl = device_authorise(daemon, tokens, pki)
    assert "1 deferred message of" in ctl.out
    assert not mark.exists()
    xo_upstream.wait_for_messages(1, timeout=DELIVERY_TIMEOUT)
    wait_until(lambda: daemon.queued() == [], DELIVERY_TIMEOUT, "an empty queue")
    status = run_ctl(daemon, "status")
    assert f"oauth [{USER}]: ok" in status.stdout


def test_refused_fresh_token_is_a_configuration_problem_and_mail_waits(start_proxy,
        tokens, xo_upstream):
    xo_upstream.reject_with = ("535 5.7.139 Authentication unsuccessful, "
        "SmtpClientAuthentication is disabled for the Tenant.")
    access, refresh = tokens.issue()
    daemon = start_proxy(start=False)
    write_store(daemon.token_file(), access, refresh, time.time() + 3600)
    daemon.start()

    queue_id = send_message(daemon.port, USER, [RCPT], message())
    wait_until(lambda: "configuration problem" in daemon.log_text(), DELIVERY_TIMEOUT,
        "the configuration problem in the log")
    wait_until(lambda: "deferred" in daemon.log_text(), DELIVERY_TIMEOUT, "a deferral")
    # one new token for the first refusal, none for the second
    assert tokens.count("refresh_token") == 1
    assert "5.7.139" in daemon.log_text()
    assert daemon.find_queued(queue_id) is not None
    assert daemon.spool_names("failed") == []


def test_token_endpoint_500_defers_and_delivery_follows_later(start_proxy, tokens,
        xo_upstream):
    access, refresh = tokens.issue()
    daemon = start_proxy(start=False)
    write_store(daemon.token_file(), access, refresh, time.time() - 10)
    tokens.fail = [500]
    daemon.start()

    send_message(daemon.port, USER, [RCPT], message())
    wait_until(lambda: "answered HTTP 500" in daemon.log_text(), DELIVERY_TIMEOUT,
        "the 500 in the log")
    assert not Path(str(daemon.token_file()) + ".needauth").exists()
    xo_upstream.wait_for_messages(1, timeout=DELIVERY_TIMEOUT)
    assert tokens.count("refresh_token") == 2


def test_token_command_supplies_the_token(make_proxy, pki, tokens, xo_upstream, tmp_path):
    access, _ = tokens.issue(refresh=False)
    token_txt = tmp_path / "token.txt"
    token_txt.write_text(access + "\n")
    account = {
        "smtphost": LOCALHOST, "smtpport": xo_upstream.port, "smtpsecurity": "tls",
        "tlscafile": str(pki.ca.cert), "smtpusername": USER, "smtpauth": "xoauth2",
        "oauthtokencommand": f"cat {token_txt}",
    }
    daemon = make_proxy(config=RELAY_CONFIG, logging={"level": "DEBUG"},
        accounts={USER: account})

    send_message(daemon.port, USER, [RCPT], message())
    xo_upstream.wait_for_messages(1, timeout=DELIVERY_TIMEOUT)
    assert xo_upstream.good_logins[-1][1] == access
    assert_no_secret_in(daemon.log_text(), [access])


def test_no_token_in_any_log_line_at_debuglevel_2(start_proxy, tokens, pki, xo_upstream):
    tokens.access_size = 4096
    stale, refresh = tokens.issue()
    tokens.revoke(stale)
    daemon = start_proxy(start=False, oauthclientsecret=tokens.client_secret)
    write_store(daemon.token_file(), stale, refresh, time.time() + 3600)
    daemon.start()

    send_message(daemon.port, USER, [RCPT], message())
    xo_upstream.wait_for_messages(1, timeout=DELIVERY_TIMEOUT)
    ctl = device_authorise(daemon, tokens, pki)
    log = daemon.log_text()
    # the dialogue was logged, its secrets were not
    assert "AUTH XOAUTH2" in log
    assert "<redacted>" in log
    secrets_ = tokens.issued_access + tokens.issued_refresh + [tokens.client_secret]
    secrets_ += sasl_strings(USER, tokens.issued_access)
    assert_no_secret_in(log, secrets_)
    assert_no_secret_in(ctl.out + ctl.err, secrets_)


def test_upstream_without_auth_never_gets_the_mail(make_proxy, pki, tokens):
    plain = ScriptedUpstream("starttls", cert=pki.cert)
    plain.start()
    try:
        access, refresh = tokens.issue()
        account = xo_account(pki, tokens, plain)
        daemon = make_proxy(config=RELAY_CONFIG, logging={"level": "DEBUG"},
            accounts={USER: account}, start=False)
        write_store(Path(daemon.msgdir) / "oauth" / f"{USER}.json", access, refresh,
            time.time() + 3600)
        daemon.start()

        queue_id = send_message(daemon.port, USER, [RCPT], message())
        wait_until(lambda: "deferred" in daemon.log_text(), DELIVERY_TIMEOUT, "a deferral")
        assert "not authenticated upstream" in daemon.log_text()
        assert plain.messages == []
        assert daemon.find_queued(queue_id) is not None
    finally:
        plain.stop()


def test_plain_http_token_endpoint_is_a_config_error(start_proxy):
    daemon = start_proxy(start=False, oauthtokenurl="http://login.example.com/token")
    result = run_ctl(daemon, "check")

    assert result.returncode == 1
    assert re.search(rf"^{re.escape(str(daemon.config_path))}:\d+: "
        r"'http://login.example.com/token' for key 'oauthtokenurl': plain http:// "
        r"is allowed only to this machine", result.stderr, re.M), result.stderr


# ---------------------------------------------------------------- relay wiring

def test_keepalive_refreshes_a_refresh_token_unused_for_a_week(start_proxy, tokens):
    access, refresh = tokens.issue()
    daemon = start_proxy(start=False)
    week_ago = time.time() - 8 * 86400
    write_store(daemon.token_file(), access, refresh, time.time() + 3600,
        refreshed_at=week_ago)
    daemon.start()

    wait_until(lambda: tokens.count("refresh_token") == 1, DELIVERY_TIMEOUT,
        "a keep-alive refresh")
    wait_until(lambda: read_store(daemon.token_file())["refreshed_at"] > week_ago + 86400,
        5.0, "the token file to be rewritten")


def test_mail_of_an_account_needing_authorisation_outlives_queuelifetime(start_proxy,
        tokens):
    daemon = start_proxy(start=False, config={"queuelifetime": 2, "retrymax": 1})
    write_store(daemon.token_file(), "expired-token", "rt.revoked-long-ago", time.time() - 10)
    daemon.start()

    queue_id = send_message(daemon.port, USER, [RCPT], message())
    wait_until(lambda: Path(str(daemon.token_file()) + ".needauth").exists(),
        DELIVERY_TIMEOUT, "the account to be marked")
    time.sleep(5)
    assert daemon.spool_names("failed") == []
    assert daemon.find_queued(queue_id) is not None
