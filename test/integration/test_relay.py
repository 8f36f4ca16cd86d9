"""The relay (issue 4): each message goes to the upstream of its sender's
account, over plain SMTP, STARTTLS or implicit TLS with the certificate
verified, logged in when the account says so, with POP-before-SMTP, the
envelope and header rewriting of the account, and retries that never
lose mail.

Each test starts the real daemon (conftest.make_proxy) and real aiosmtpd
upstreams (upstreams.ScriptedUpstream) with certificates of a test CA made
by openssl (tlsca), and for POP-before-SMTP a real Dovecot (dovecot).
"""

import os
import re
import signal
import socket
import threading
import time
from types import SimpleNamespace

import pytest

import dovecot
import helpers
import tlsca
from helpers import LOCALHOST, field_name, send_message, split_header, wait_until
from upstreams import ScriptedUpstream

SENDER = "app@example.com"
RCPT = "someone@example.org"
USER = "relay-user@example.com"
PASSWORD = "upstream-Secret-7"
EHLO_NAME = "relay.example.org"

# Small back-off so that retries happen within a test.
RELAY_CONFIG = {
    "sleeptime": 30,
    "retrymin": 1,
    "retrymax": 8,
    "waitafterpop": 0,
    "relaytimeout": 10,
}

RELAY_MODE = {"none": "none", "starttls": "tls", "ssl": "ssl"}
CUR_NAME_RE = re.compile(r"^(?P<id>[^:]+):1,A(?P<attempts>\d+),T(?P<next>\d+)")


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """pki - a test CA and the server certificates the tests present"""
    folder = tmp_path_factory.mktemp("pki")
    ca = tlsca.make_ca(folder)
    return SimpleNamespace(
        ca=ca,
        good=tlsca.make_server_cert(ca, folder=folder),
        untrusted=tlsca.make_untrusted_server_cert(folder),
        wrong_host=tlsca.make_wrong_host_cert(ca, folder),
        untrusted_wrong_host=tlsca.make_untrusted_server_cert(folder,
            names=(tlsca.WRONG_HOST,)),
    )


@pytest.fixture
def start_upstream(pki):
    """start_upstream(security, cert="good", users=None, ...) -> ScriptedUpstream"""
    started = []

    def start(security="none", cert="good", **kwargs):
        up = ScriptedUpstream(security,
            cert=getattr(pki, cert) if security != "none" else None, **kwargs)
        up.start()
        started.append(up)
        return up

    yield start
    for up in started:
        up.release()
        up.stop()


@pytest.fixture
def relay(start_upstream, make_proxy):
    """relay(accounts, **config) -> a running daemon with the relay settings"""
    def start(accounts, **config):
        return make_proxy(config={**RELAY_CONFIG, **config}, accounts=accounts)
    return start


def account(up, pki=None, **keys):
    """account - settings of an account that relays to the upstream up"""
    settings = {
        "smtphost": LOCALHOST,
        "smtpport": up.port,
        "smtpsecurity": RELAY_MODE[up.security],
        "localhostname": EHLO_NAME,
    }
    if up.security != "none" and pki is not None:
        settings["tlscafile"] = str(pki.ca.cert)
    settings.update(keys)
    return settings


# ---------------------------------------------------------------- helpers

def message(subject, body=b"Hello.\r\n", extra=b"", sender=SENDER):
    """message - a small RFC 5322 message with CRLF line ends"""
    head = (b"From: Legacy App <" + sender.encode() + b">\r\n"
        b"To: Someone <someone@example.org>\r\n"
        b"Subject: " + subject.encode() + b"\r\n"
        b"Date: Fri, 21 Nov 2025 10:00:00 +0100\r\n"
        b"Message-ID: <" + re.sub(r"[^A-Za-z0-9]", "-", subject).encode()
        + b"@app.example.com>\r\n")
    return head + extra + b"\r\n" + body


def after_our_received(content):
    """after_our_received - the message as the client sent it (our Received: off)"""
    fields, rest = split_header(content)
    assert field_name(fields[0]) == b"received", fields[0]
    return b"".join(fields[1:]) + rest


def fields_of(msg):
    """fields_of - ([(lower-case name, whole field bytes)], rest) of a message"""
    fields, rest = split_header(msg)
    return [(field_name(f), f) for f in fields], rest


def header_fields(content):
    """header_fields - fields_of what the upstream got, our Received: off"""
    return fields_of(after_our_received(content))


def log_matches(proxy, pattern):
    """log_matches - every match of pattern (multi-line) in the daemon's log"""
    return re.findall(pattern, proxy.log_text(), re.M)


def wait_log(proxy, pattern, timeout=5.0, count=1):
    """wait_log - the first count matches of pattern in the daemon's log"""
    def found():
        got = log_matches(proxy, pattern)
        return got if len(got) >= count else None
    return wait_until(found, timeout, f"{count} log line(s) matching {pattern!r}")


def wait_deferred(proxy, queue_id, attempt=1, timeout=5.0):
    """wait_deferred - until the relay logged attempt number attempt as deferred"""
    [line] = wait_log(proxy, rf"^.*{re.escape(queue_id)}: deferred \(attempt {attempt},.*$",
        timeout)
    return line


def cur_state(proxy, queue_id):
    """cur_state - (attempts, next attempt) of queue_id in cur/, or None"""
    for name in proxy.spool_names("cur"):
        m = CUR_NAME_RE.match(name)
        if m and m.group("id") == queue_id:
            return int(m.group("attempts")), int(m.group("next"))
    return None


def assert_deferred(proxy, queue_id):
    """assert_deferred - kept in cur/ with a retry state, not failed, not lost"""
    state = cur_state(proxy, queue_id)
    assert state is not None, f"{queue_id} not deferred in cur/: {proxy.queued()}"
    assert state[0] >= 1, state
    assert not proxy.spool_names("failed"), proxy.spool_names("failed")
    assert not proxy.spool_names("new")


def wait_spool_empty(proxy, timeout=5.0):
    wait_until(lambda: not proxy.queued(), timeout,
        f"new/ and cur/ to be empty (still: {proxy.queued()})")


def reload_and_flush(proxy):
    """reload_and_flush - SIGHUP, wait for the new relay, then SIGUSR1"""
    started = len(log_matches(proxy, r"relay started"))
    reloaded = len(log_matches(proxy, r"configuration reloaded"))
    os.kill(proxy.pid, signal.SIGHUP)
    wait_log(proxy, r"configuration reloaded", count=reloaded + 1)
    wait_log(proxy, r"relay started", count=started + 1)
    os.kill(proxy.pid, signal.SIGUSR1)


# ---------------------------------------------------------------- security modes

@pytest.mark.parametrize("mechanism", [None, "PLAIN", "LOGIN"])
@pytest.mark.parametrize("security", ["none", "starttls", "ssl"])
def test_message_is_delivered_in_each_security_mode_with_and_without_auth(
        start_upstream, relay, pki, security, mechanism):
    if mechanism:
        up = start_upstream(security, users={USER: PASSWORD}, mechanisms=(mechanism,))
        acct = account(up, pki, smtpusername=USER, smtppassword=PASSWORD)
    else:
        up = start_upstream(security)
        acct = account(up, pki)
    proxy = relay({"default": acct})
    sent = message(f"mode {security} {mechanism}")
    send_message(proxy.port, SENDER, [RCPT], sent)
    [got] = up.wait_for_messages(1)
    assert got.mail_from == SENDER and got.rcpt_tos == [RCPT]
    assert after_our_received(got.content) == sent
    [conn] = up.connections
    [tx] = conn.transactions
    assert conn.ehlos[-1] == EHLO_NAME
    assert tx.tls == (security != "none"), "TLS state when MAIL FROM was sent"
    if mechanism:
        assert conn.logins == [(mechanism, USER, True)]
        assert tx.authenticated
    else:
        assert conn.logins == []
    wait_spool_empty(proxy)


# ---------------------------------------------------------------- certificates

@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_certificate_from_an_unknown_ca_is_refused_and_the_message_stays_deferred(
        start_upstream, relay, pki, security):
    up = start_upstream(security, cert="untrusted", users={USER: PASSWORD})
    proxy = relay({"default": account(up, pki, smtpusername=USER, smtppassword=PASSWORD)})
    queue_id = send_message(proxy.port, SENDER, [RCPT], message("unknown ca"))
    line = wait_deferred(proxy, queue_id, attempt=2)
    assert re.search(r"certificate|verif", line, re.I), line
    assert_deferred(proxy, queue_id)
    assert up.transactions == [] and up.logins == []


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_certificate_for_another_host_name_is_refused_and_the_message_stays_deferred(
        start_upstream, relay, pki, security):
    up = start_upstream(security, cert="wrong_host", users={USER: PASSWORD})
    proxy = relay({"default": account(up, pki, smtpusername=USER, smtppassword=PASSWORD)})
    queue_id = send_message(proxy.port, SENDER, [RCPT], message("wrong host"))
    line = wait_deferred(proxy, queue_id, attempt=2)
    assert re.search(r"certificate|verif", line, re.I), line
    assert_deferred(proxy, queue_id)
    assert up.transactions == [] and up.logins == []


def test_one_accounts_tlscafile_is_not_trusted_for_another_account(
        start_upstream, relay, pki):
    trusting, other = start_upstream("starttls"), start_upstream("starttls")
    proxy = relay({
        "trusting@example.com": account(trusting, pki),
        "default": account(other),          # system CAs only
    })
    send_message(proxy.port, "trusting@example.com", [RCPT],
        message("own ca", sender="trusting@example.com"))
    trusting.wait_for_messages(1)
    queue_id = send_message(proxy.port, SENDER, [RCPT], message("no ca"))
    wait_deferred(proxy, queue_id, attempt=1)
    assert_deferred(proxy, queue_id)
    assert other.transactions == []


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tlsverify_false_delivers_despite_an_unknown_ca_and_a_wrong_name(
        start_upstream, relay, pki, security):
    up = start_upstream(security, cert="untrusted_wrong_host")
    proxy = relay({"default": account(up, pki, tlsverify=False)})
    sent = message("no verify")
    send_message(proxy.port, SENDER, [RCPT], sent)
    [got] = up.wait_for_messages(1)
    assert after_our_received(got.content) == sent
    assert up.transactions[0].tls
    wait_spool_empty(proxy)


def test_tls_account_against_a_server_without_starttls_defers_and_sends_nothing_in_plain(
        start_upstream, relay, pki):
    # The server offers AUTH in the clear: the relay must not use it.
    up = start_upstream("none", users={USER: PASSWORD})
    proxy = relay({"default": account(up, pki, smtpsecurity="tls",
        tlscafile=str(pki.ca.cert), smtpusername=USER, smtppassword=PASSWORD)})
    queue_id = send_message(proxy.port, SENDER, [RCPT], message("no starttls"))
    line = wait_deferred(proxy, queue_id, attempt=2)
    assert "STARTTLS" in line.upper(), line
    assert_deferred(proxy, queue_id)
    assert up.connections, "the relay never reached the upstream"
    assert up.logins == [], "credentials went out in plain text"
    assert up.transactions == [], "MAIL FROM went out in plain text"


# ---------------------------------------------------------------- AUTH

def test_wrong_password_defers_and_the_fixed_config_delivers_after_sighup(
        start_upstream, relay, pki):
    up = start_upstream("starttls", users={USER: PASSWORD})
    proxy = relay({"default": account(up, pki, smtpusername=USER,
        smtppassword="not-the-password")}, retrymin=60, retrymax=60)
    sent = message("wrong password")
    queue_id = send_message(proxy.port, SENDER, [RCPT], sent)
    wait_deferred(proxy, queue_id, attempt=1)
    assert_deferred(proxy, queue_id)
    assert up.logins and all(login == USER and not ok for _, login, ok in up.logins)
    assert up.transactions == []

    proxy.settings.accounts["default"]["smtppassword"] = PASSWORD
    proxy.settings.write(proxy.config_path)
    reload_and_flush(proxy)
    # retrymin is 60 s: only the reload and the flush make this quick.
    [got] = up.wait_for_messages(1, timeout=5.0)
    assert after_our_received(got.content) == sent
    assert up.logins[-1][1:] == (USER, True)
    wait_spool_empty(proxy)
    assert not proxy.spool_names("failed")


@pytest.mark.parametrize("security", ["none", "starttls"])
def test_credentials_against_a_server_offering_no_auth_send_no_message(
        start_upstream, relay, pki, security):
    up = start_upstream(security)       # no users: no AUTH offered
    proxy = relay({"default": account(up, pki, smtpusername=USER, smtppassword=PASSWORD)})
    queue_id = send_message(proxy.port, SENDER, [RCPT], message("no auth offered"))
    wait_deferred(proxy, queue_id, attempt=2)
    assert_deferred(proxy, queue_id)
    assert up.attempts == [], "the upstream got a complete DATA without a login"
    assert up.messages == []


# ---------------------------------------------------------------- POP-before-SMTP

POP_USER = "popuser"
POP_PASSWORD = "pop-Secret-3"


@pytest.fixture
def pop_server(tmp_path, pki):
    """pop_server - a real Dovecot POP3 server over implicit TLS, one user"""
    server = dovecot.Dovecot(tmp_path / "dovecot", user=POP_USER,
        password=POP_PASSWORD, cert=pki.good.cert, key=pki.good.key, plain=False)
    server.start()
    yield server
    server.stop()


def pop_account(up, pki, pop, **keys):
    """pop_account - an account relaying to up after a POP login at pop"""
    settings = {"popbeforesmtp": True, "pophost": LOCALHOST,
        "popport": pop.pop3s_port, "popssl": True, "popusername": POP_USER,
        "poppassword": POP_PASSWORD}
    settings.update(keys)
    return account(up, pki, **settings)


def test_pop_login_comes_before_the_smtp_session_and_not_again_within_popcheckdelay(
        start_upstream, relay, pki, pop_server):
    up = start_upstream("starttls")
    pop_logins_at_ehlo = []
    up.on_connect = lambda conn: pop_logins_at_ehlo.append(len(pop_server.logins()))
    # Dovecot's log is written by a process of its own: a second between
    # the POP login and the SMTP session lets its line arrive first.
    proxy = relay({"default": pop_account(up, pki, pop_server, popcheckdelay=60)},
        waitafterpop=1)
    send_message(proxy.port, SENDER, [RCPT], message("pop first"))
    up.wait_for_messages(1, timeout=8.0)
    [login] = pop_server.wait_for_logins(1)
    assert f"user=<{POP_USER}>" in login
    assert pop_logins_at_ehlo == [1], \
        f"POP logins in Dovecot's log when the SMTP session began: {pop_logins_at_ehlo}"

    send_message(proxy.port, SENDER, [RCPT], message("pop second"))
    up.wait_for_messages(2, timeout=8.0)
    time.sleep(0.3)
    assert len(pop_server.logins()) == 1, "a second POP login within popcheckdelay"
    wait_spool_empty(proxy)


def test_failed_pop_login_defers_and_no_smtp_session_is_made(
        start_upstream, relay, pki, pop_server):
    up = start_upstream("starttls")
    proxy = relay({"default": pop_account(up, pki, pop_server,
        poppassword="not-the-pop-password")})
    queue_id = send_message(proxy.port, SENDER, [RCPT], message("pop refused"))
    wait_deferred(proxy, queue_id, attempt=1, timeout=8.0)
    assert_deferred(proxy, queue_id)
    wait_until(lambda: pop_server.failures(POP_USER), 3.0, "a failed login in Dovecot's log")
    assert pop_server.logins() == []
    assert up.connections == [], "SMTP session made although the POP login failed"


# ---------------------------------------------------------------- routing

def test_each_sender_reaches_the_upstream_of_its_own_account(start_upstream, relay):
    exact, domain, default = (start_upstream() for _ in range(3))
    proxy = relay({
        "boss@example.com": account(exact),
        "@example.com": account(domain),
        "default": account(default),
    })
    senders = {exact: "boss@example.com", domain: "clerk@example.com",
        default: "stranger@example.net"}
    for up, sender in senders.items():
        send_message(proxy.port, sender, [RCPT], message(sender, sender=sender))
    for up, sender in senders.items():
        [got] = up.wait_for_messages(1)
        assert got.mail_from == sender
    time.sleep(0.3)
    for up, sender in senders.items():
        assert [m.mail_from for m in up.messages] == [sender]


def test_use_reaches_the_upstream_of_the_aliased_account(start_upstream, relay):
    target, default = start_upstream(), start_upstream()
    proxy = relay({
        "alias@example.com": {"use": "boss@example.com"},
        "boss@example.com": account(target),
        "default": account(default),
    })
    sent = message("alias", sender="alias@example.com")
    send_message(proxy.port, "alias@example.com", [RCPT], sent)
    [got] = target.wait_for_messages(1)
    assert got.mail_from == "alias@example.com"
    assert after_our_received(got.content) == sent
    time.sleep(0.3)
    assert default.messages == []


# ---------------------------------------------------------------- envelope and headers

def test_returnpath_becomes_the_envelope_sender_and_the_message_is_unchanged(
        start_upstream, relay):
    up = start_upstream()
    proxy = relay({"default": account(up, returnpath="bounces@example.com")})
    sent = message("returnpath")
    send_message(proxy.port, SENDER, [RCPT], sent)
    [got] = up.wait_for_messages(1)
    assert got.mail_from == "bounces@example.com"
    assert got.rcpt_tos == [RCPT]
    assert after_our_received(got.content) == sent


def test_replyto_replaces_an_existing_reply_to_field(start_upstream, relay):
    up = start_upstream()
    proxy = relay({"default": account(up, replyto="desk@example.com")})
    sent = message("replyto", extra=b"Reply-To: old@example.com,\r\n\tother@example.com\r\n")
    send_message(proxy.port, SENDER, [RCPT], sent)
    [got] = up.wait_for_messages(1)
    fields, rest = header_fields(got.content)
    assert [f for n, f in fields if n == b"reply-to"] == [b"Reply-To: desk@example.com\r\n"]
    sent_fields, sent_rest = fields_of(sent)
    assert [f for n, f in fields if n != b"reply-to"] == \
        [f for n, f in sent_fields if n != b"reply-to"]
    assert rest == sent_rest
    assert got.mail_from == SENDER


def test_replyto_adds_a_reply_to_field_when_there_is_none(start_upstream, relay):
    up = start_upstream()
    proxy = relay({"default": account(up, replyto="desk@example.com")})
    sent = message("replyto added")
    send_message(proxy.port, SENDER, [RCPT], sent)
    [got] = up.wait_for_messages(1)
    fields, rest = header_fields(got.content)
    assert [f for n, f in fields if n == b"reply-to"] == [b"Reply-To: desk@example.com\r\n"]
    sent_fields, sent_rest = fields_of(sent)
    assert [f for n, f in fields if n != b"reply-to"] == [f for _, f in sent_fields]
    assert rest == sent_rest


def test_forcefrom_replaces_from_and_the_envelope_sender(start_upstream, relay):
    up = start_upstream()
    proxy = relay({"default": account(up, forcefrom="noreply@example.com")})
    sent = message("forcefrom")
    send_message(proxy.port, SENDER, [RCPT], sent)
    [got] = up.wait_for_messages(1)
    assert got.mail_from == "noreply@example.com"
    fields, rest = header_fields(got.content)
    assert [f for n, f in fields if n == b"from"] == [b"From: noreply@example.com\r\n"]
    sent_fields, sent_rest = fields_of(sent)
    assert [f for n, f in fields if n != b"from"] == \
        [f for n, f in sent_fields if n != b"from"]
    assert rest == sent_rest


def test_returnpath_wins_over_forcefrom_for_the_envelope_sender(start_upstream, relay):
    up = start_upstream()
    proxy = relay({"default": account(up, forcefrom="noreply@example.com",
        returnpath="bounces@example.com")})
    send_message(proxy.port, SENDER, [RCPT], message("both"))
    [got] = up.wait_for_messages(1)
    assert got.mail_from == "bounces@example.com"
    fields, _ = header_fields(got.content)
    assert [f for n, f in fields if n == b"from"] == [b"From: noreply@example.com\r\n"]


def test_rewriting_never_touches_the_body(start_upstream, relay):
    up = start_upstream()
    proxy = relay({"default": account(up, replyto="desk@example.com",
        forcefrom="noreply@example.com", returnpath="bounces@example.com")})
    body = (b"From: someone in the body\r\n"
        b"Reply-To: also in the body\r\n"
        b"\r\n"
        b"From the start of a line.\r\n"
        b"Return-Path: <body@example.com>\r\n")
    sent = message("body untouched", body=body)
    send_message(proxy.port, SENDER, [RCPT], sent)
    [got] = up.wait_for_messages(1)
    _, rest = header_fields(got.content)
    assert rest == b"\r\n" + body


# ---------------------------------------------------------------- outcomes and retries

def test_temporary_failure_is_retried_with_growing_gaps_until_delivered(
        start_upstream, relay):
    up = start_upstream()
    up.rcpt_script[RCPT] = ["450 4.2.0 mailbox busy"] * 3 + ["250 2.1.5 Ok"]
    proxy = relay({"default": account(up)}, retrymin=1, retrymax=8)
    sent = message("retry")
    queue_id = send_message(proxy.port, SENDER, [RCPT], sent)

    states = set()      # (attempts, next) seen in cur/ names
    deadline = time.monotonic() + 15.0
    while not up.messages:
        assert time.monotonic() < deadline, \
            f"not delivered in 15 s; transactions: {len(up.transactions)}"
        state = cur_state(proxy, queue_id)
        if state:
            states.add(state)
        time.sleep(helpers.POLL_INTERVAL)
    [got] = up.messages
    assert after_our_received(got.content) == sent

    tries = [t.at for t in up.transactions]
    assert len(tries) == 4, tries
    gaps = [b - a for a, b in zip(tries, tries[1:])]
    for gap, delay in zip(gaps, (1, 2, 4)):
        assert delay - 1.2 <= gap <= delay + 1.2, (gaps, "expected about 1, 2, 4 s")
    assert gaps[0] < gaps[2] and gaps[1] < gaps[2] + 0.5, gaps

    nexts = dict(sorted(s for s in states if s[0] > 0))   # A0: claimed, not tried
    assert sorted(nexts) == [1, 2, 3], f"attempt counts seen in cur/: {sorted(states)}"
    assert 1 <= nexts[2] - nexts[1] <= 3 and 3 <= nexts[3] - nexts[2] <= 5, nexts
    delays = [int(d) for d in log_matches(proxy,
        rf"{re.escape(queue_id)}: deferred \(attempt \d+, next in (\d+) s\)")]
    assert delays == [1, 2, 4], delays
    wait_spool_empty(proxy)


@pytest.mark.parametrize("pipelining", [False, True])
@pytest.mark.parametrize("where", ["rcpt", "data"])
def test_permanent_failure_moves_the_message_to_failed_with_the_reason(
        start_upstream, relay, where, pipelining):
    up = start_upstream(pipelining=pipelining)
    if where == "rcpt":
        text = "550 5.1.1 <someone@example.org>: no such user here"
        up.rcpt_script[RCPT] = [text]
    else:
        text = "554 5.7.1 message refused as spam"
        up.data_script = [text]
    proxy = relay({"default": account(up)})
    sent = message("permanent")
    queue_id = send_message(proxy.port, SENDER, [RCPT], sent)
    wait_until(lambda: queue_id in proxy.spool_names("failed"), 5.0,
        f"{queue_id} in failed/ (failed/: {proxy.spool_names('failed')})")
    reason = proxy.msgdir / "failed" / (queue_id + ".reason")
    assert reason.is_file(), proxy.spool_names("failed")
    assert text in reason.read_text()
    assert sent in (proxy.msgdir / "failed" / queue_id).read_bytes()
    assert proxy.queued() == []
    time.sleep(1.5)     # longer than retrymin: it is not tried again
    assert len(up.transactions) == 1


def test_permanent_failure_with_deleteonerror_deletes_the_message_and_logs_it(
        start_upstream, relay):
    up = start_upstream()
    up.rcpt_script[RCPT] = ["550 5.1.1 no such user here"]
    proxy = relay({"default": account(up)}, deleteonerror=True)
    queue_id = send_message(proxy.port, SENDER, [RCPT], message("delete on error"))
    [line] = wait_log(proxy, rf"^.*{re.escape(queue_id)}.*delet.*$")
    assert "550" in line, line
    wait_spool_empty(proxy)
    assert proxy.spool_names("failed") == []
    time.sleep(1.5)
    assert len(up.transactions) == 1


@pytest.mark.parametrize("pipelining", [False, True])
def test_only_the_temporarily_refused_recipient_is_retried(start_upstream, relay, pipelining):
    up = start_upstream(pipelining=pipelining)
    ok, later, never = "ok@example.org", "later@example.org", "never@example.org"
    up.rcpt_script[later] = ["450 4.2.1 greylisted, try later", "250 2.1.5 Ok"]
    up.rcpt_script[never] = ["550 5.1.1 <never@example.org>: no such user"]
    proxy = relay({"default": account(up)})
    sent = message("mixed")
    queue_id = send_message(proxy.port, SENDER, [ok, later, never], sent)
    first, second = up.wait_for_messages(2, timeout=6.0)
    assert first.rcpt_tos == [ok]
    assert second.rcpt_tos == [later]
    txs = up.transactions
    assert len(txs) == 2, [t.rcpts for t in txs]
    assert sorted(txs[0].rcpt_addresses) == sorted([ok, later, never])
    assert txs[1].rcpt_addresses == [later], "the retry must ask for the owed recipient only"
    assert after_our_received(second.content) == sent
    logged = [l for l in log_matches(proxy, rf"^.*{re.escape(queue_id)}.*<{re.escape(never)}>.*$")
        if "550" in l and "no such user" in l]
    assert logged, "the 550 recipient is not logged: " \
        f"{log_matches(proxy, rf'^.*{re.escape(queue_id)}.*$')}"
    wait_spool_empty(proxy)
    time.sleep(1.5)
    assert len(up.transactions) == 2


# ---------------------------------------------------------------- the transaction

@pytest.mark.parametrize("security", ["none", "starttls"])
def test_with_pipelining_offered_rcpt_and_data_go_out_with_mail_from(
        start_upstream, relay, pki, security):
    # One round trip for the envelope instead of one per command: what
    # RFC 2920 allows once the server offers PIPELINING.
    users = {USER: PASSWORD} if security == "starttls" else None
    login = {"smtpusername": USER, "smtppassword": PASSWORD} if users else {}
    up = start_upstream(security, users=users, pipelining=True)
    proxy = relay({"default": account(up, pki, **login)})
    rcpts = ["one@example.org", "two@example.org"]
    sent = message("pipelined", body=b".leading dot\r\n..two dots\r\n.\r\nlast\r\n")
    send_message(proxy.port, SENDER, rcpts, sent)
    [got] = up.wait_for_messages(1)
    assert after_our_received(got.content) == sent, "dot-stuffing must be transparent"
    assert got.rcpt_tos == rcpts
    [tx] = up.transactions
    assert tx.ahead == (b"RCPT TO:<one@example.org>\r\nRCPT TO:<two@example.org>\r\n"
        b"DATA\r\n"), f"sent ahead of the reply to MAIL FROM: {tx.ahead!r}"
    if users:
        assert tx.tls and tx.authenticated
    wait_spool_empty(proxy)


def test_without_pipelining_offered_each_command_waits_for_its_reply(
        start_upstream, relay):
    up = start_upstream()
    proxy = relay({"default": account(up)})
    sent = message("one command at a time")
    send_message(proxy.port, SENDER, ["one@example.org", "two@example.org"], sent)
    [got] = up.wait_for_messages(1)
    assert after_our_received(got.content) == sent
    [tx] = up.transactions
    assert tx.ahead == b"", f"sent ahead without PIPELINING: {tx.ahead!r}"
    wait_spool_empty(proxy)


def test_a_pipelined_message_nobody_takes_fails_and_the_session_carries_the_next(
        start_upstream, relay):
    # DATA went out with the refused RCPT; RSET leaves the session clean
    # for the next message, which must not see the first one's replies.
    up = start_upstream(pipelining=True)
    nobody = "nobody@example.org"
    up.rcpt_script[nobody] = ["550 5.1.1 <nobody@example.org>: no such user"]
    proxy = relay({"default": account(up)})
    refused = send_message(proxy.port, SENDER, [nobody], message("nobody"))
    wait_until(lambda: refused in proxy.spool_names("failed"), 5.0,
        f"{refused} in failed/ (failed/: {proxy.spool_names('failed')})")
    reason = (proxy.msgdir / "failed" / (refused + ".reason")).read_text()
    assert "550 5.1.1" in reason and "no such user" in reason, reason
    sent = message("somebody")
    send_message(proxy.port, SENDER, [RCPT], sent)
    [got] = up.wait_for_messages(1)
    assert after_our_received(got.content) == sent and got.rcpt_tos == [RCPT]
    assert len(up.connections) == 1, "the session was not kept after the refusal"
    assert [t.rcpt_addresses for t in up.connections[0].transactions] == [[nobody], [RCPT]]
    wait_spool_empty(proxy)


# ---------------------------------------------------------------- throughput

def test_twenty_messages_of_one_account_go_over_one_session(start_upstream, relay, pki):
    up = start_upstream("starttls", users={USER: PASSWORD})
    up.stop()           # down while the messages are queued
    proxy = relay({"default": account(up, pki, smtpusername=USER, smtppassword=PASSWORD)},
        retrymin=60, retrymax=60)
    sent = [message(f"batch {n}", body=f"Message {n}.\r\n".encode()) for n in range(20)]
    with helpers.smtp_client(proxy.port) as client:
        for m in sent:
            helpers.queue_id_of(*helpers.submit(client, SENDER, [RCPT], m))
        client.quit()
    wait_until(lambda: len(proxy.spool_names("cur")) == 20 and not proxy.spool_names("new")
        and all(cur_state(proxy, n.split(":")[0]) for n in proxy.spool_names("cur"))
        and len(log_matches(proxy, r": deferred \(attempt 1,")) == 20,
        10.0, f"20 messages deferred after a failed attempt ({proxy.queued()})")

    up.start()
    os.kill(proxy.pid, signal.SIGUSR1)
    got = up.wait_for_messages(20, timeout=10.0)
    assert sorted(after_our_received(m.content) for m in got) == sorted(sent)
    conns = up.connections
    assert len(conns) == 1, f"{len(conns)} connections for one account's 20 messages"
    assert len(conns[0].messages) == 20
    assert conns[0].ehlos == [EHLO_NAME, EHLO_NAME], "one EHLO before and one after STARTTLS"
    assert conns[0].logins == [("PLAIN", USER, True)] or \
        conns[0].logins == [("LOGIN", USER, True)], conns[0].logins
    wait_spool_empty(proxy)


LINGER = 5.0    # RELAY_LINGER_MS: an idle courier keeps its connection this long


def test_messages_sent_one_after_another_share_one_upstream_connection(
        start_upstream, relay, pki):
    # A legacy program sends one message per SMTP session; the relay keeps
    # the upstream connection (TLS and login done) for the next one.
    up = start_upstream("starttls", users={USER: PASSWORD})
    proxy = relay({"default": account(up, pki, smtpusername=USER, smtppassword=PASSWORD)})
    sent = [message(f"one after another {n}") for n in range(3)]
    for n, m in enumerate(sent):
        send_message(proxy.port, SENDER, [RCPT], m)
        up.wait_for_messages(n + 1)
    conns = up.connections
    assert len(conns) == 1, f"{len(conns)} connections for three messages in a row"
    assert [after_our_received(t.content) for t in conns[0].messages] == sent
    assert len(conns[0].good_logins) == 1, conns[0].logins
    assert conns[0].closed is None, "the idle connection was closed at once"
    wait_spool_empty(proxy)


def test_an_idle_upstream_connection_is_ended_with_quit_after_a_few_seconds(
        start_upstream, relay):
    up = start_upstream()
    proxy = relay({"default": account(up)})
    send_message(proxy.port, SENDER, [RCPT], message("linger"))
    up.wait_for_messages(1)
    [conn] = up.connections
    up.wait_for_closed(conn, timeout=LINGER + 5.0)
    assert conn.quit, "the idle connection was dropped without QUIT"
    assert conn.closed - conn.messages[0].at >= LINGER - 1.0, \
        "the connection was not kept for the next message"
    send_message(proxy.port, SENDER, [RCPT], message("after the linger"))
    up.wait_for_messages(2)
    assert len(up.connections) == 2
    wait_spool_empty(proxy)


def test_a_connection_the_upstream_dropped_while_idle_is_replaced_at_once(
        start_upstream, relay):
    up = start_upstream(idle_timeout=1)
    proxy = relay({"default": account(up)})
    send_message(proxy.port, SENDER, [RCPT], message("before the drop"))
    up.wait_for_messages(1)
    up.wait_for_closed(up.connections[0], timeout=5.0)
    queue_id = send_message(proxy.port, SENDER, [RCPT], message("after the drop"))
    [_, second] = up.wait_for_messages(2)
    assert after_our_received(second.content) == message("after the drop")
    assert len(up.connections) == 2
    assert not log_matches(proxy, rf"{re.escape(queue_id)}: deferred"), \
        "a dropped idle connection cost the next message a retry"
    wait_spool_empty(proxy)


def test_an_idle_courier_makes_way_for_another_account_when_every_place_is_taken(
        start_upstream, relay):
    first, second = start_upstream(), start_upstream()
    proxy = relay({
        "first@example.com": account(first),
        "default": account(second),
    }, relayprocesses=1)
    send_message(proxy.port, "first@example.com", [RCPT],
        message("first", sender="first@example.com"))
    first.wait_for_messages(1)
    start = time.monotonic()
    send_message(proxy.port, SENDER, [RCPT], message("second"))
    second.wait_for_messages(1, timeout=LINGER + 5.0)
    assert time.monotonic() - start < LINGER - 2.0, \
        "the second account waited for the first one's idle connection to expire"
    [conn] = first.connections
    first.wait_for_closed(conn)
    assert conn.quit
    wait_spool_empty(proxy)


def test_stop_ends_an_idle_upstream_connection_with_quit_without_waiting(
        start_upstream, relay):
    up = start_upstream()
    proxy = relay({"default": account(up)})
    send_message(proxy.port, SENDER, [RCPT], message("then stop"))
    up.wait_for_messages(1)
    start = time.monotonic()
    assert proxy.stop() == 0
    assert time.monotonic() - start < LINGER - 2.0, "stop waited for the idle connection"
    [conn] = up.connections
    up.wait_for_closed(conn)
    assert conn.quit


def test_an_upstream_stalling_mid_data_does_not_block_another_account(start_upstream, relay):
    slow, fast = start_upstream(), start_upstream()
    slow.stall_data = 30.0
    proxy = relay({
        "slow@example.com": account(slow),
        "default": account(fast),
    }, relayprocesses=2, relaytimeout=5)
    try:
        send_message(proxy.port, "slow@example.com", [RCPT], message("slow", sender="slow@example.com"))
        slow.wait_for_stall()
        start = time.monotonic()
        send_message(proxy.port, SENDER, [RCPT], message("fast"))
        [got] = fast.wait_for_messages(1, timeout=3.0)
        assert time.monotonic() - start < 3.0
        assert got.mail_from == SENDER
        assert slow.messages == [], "the stalled DATA was answered already"
    finally:
        slow.release()


def test_after_a_reply_timeout_the_next_message_of_the_batch_gets_its_own_replies(
        start_upstream, relay):
    # Two messages in one batch, each to a refused and an accepted
    # recipient.  The first DATA is answered only after relaytimeout: the
    # second message must not read that late reply as its own (nor any
    # reply after it), so the accepted recipient is never failed.
    bad, good = "bad@example.org", "good@example.org"
    up = start_upstream()
    up.rcpt_script[bad] = ["550 5.1.1 <bad@example.org>: no such user"]
    up.stop()
    proxy = relay({"default": account(up)}, relaytimeout=3, retrymin=60, retrymax=60)
    with helpers.smtp_client(proxy.port) as client:
        ids = [helpers.queue_id_of(*helpers.submit(client, SENDER, [bad, good],
            message(f"late reply {n}"))) for n in range(2)]
        client.quit()
    wait_until(lambda: len(log_matches(proxy, r": deferred \(attempt 1,")) == 2, 10.0,
        "both messages deferred while the upstream is down")

    up.stall_data = 4.0     # relaytimeout + 1 s
    up.start()
    os.kill(proxy.pid, signal.SIGUSR1)
    up.wait_for_stall()
    up.stall_data = 0.0     # only the first DATA is late
    wait_until(lambda: all(len(log_matches(proxy, rf"{re.escape(i)}: from=<")) >= 2
        for i in ids), 15.0, "the attempt after the flush of both messages logged")
    wrong = log_matches(proxy, rf"^.*to=<{re.escape(good)}> failed permanently.*$")
    assert wrong == [], f"a recipient the upstream accepted was failed: {wrong}"
    for tx in up.transactions:
        assert tx.rcpt_addresses in ([bad, good], [good]), tx.rcpts
    second = [t for t in up.transactions if t.delivered and t.at > up.transactions[0].at]
    assert second and second[0].accepted == [good], \
        [(t.rcpts, t.reply) for t in up.transactions]


def test_an_upstream_stalling_mid_data_is_given_up_after_relaytimeout_and_the_message_kept(
        start_upstream, relay):
    up = start_upstream()
    up.stall_data = 30.0
    proxy = relay({"default": account(up)}, relaytimeout=3, retrymin=60, retrymax=60)
    try:
        queue_id = send_message(proxy.port, SENDER, [RCPT], message("stalled"))
        up.wait_for_stall()
        start = time.monotonic()
        wait_deferred(proxy, queue_id, attempt=1, timeout=10.0)
        assert time.monotonic() - start < 8.0
        assert_deferred(proxy, queue_id)
    finally:
        up.release()


class DeafUpstream:
    """A raw SMTP server that answers up to DATA's 354 and then reads no
    more, with a small receive buffer: the message never gets through."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.bind((LOCALHOST, 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.reached_data = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                self._session(conn.makefile("rwb", buffering=0))

    def _session(self, f):
        f.write(b"220 deaf.test ESMTP\r\n")
        while not self.done.is_set():
            line = f.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"DATA":
                f.write(b"354 go ahead\r\n")
                self.reached_data.set()
                self.done.wait(30.0)        # and never read again
                return
            f.write(b"250-deaf.test\r\n250 8BITMIME\r\n" if verb == b"EHLO"
                else b"250 ok\r\n")

    def stop(self):
        self.done.set()
        self.thread.join(5.0)
        self.sock.close()


def test_an_upstream_that_stops_reading_mid_message_is_given_up_after_relaytimeout(relay):
    up = DeafUpstream()
    try:
        proxy = relay({"default": {"smtphost": LOCALHOST, "smtpport": up.port,
            "smtpsecurity": "none", "localhostname": EHLO_NAME}},
            relaytimeout=3, retrymin=60, retrymax=60)
        # far more than the socket buffers of both ends can take
        line = b"x" * 998 + b"\r\n"
        body = line * (12 * 1024 * 1024 // len(line))
        queue_id = send_message(proxy.port, SENDER, [RCPT], message("deaf", body=body))
        assert up.reached_data.wait(10.0), "the relay never got to DATA"
        start = time.monotonic()
        line = wait_deferred(proxy, queue_id, attempt=1, timeout=15.0)
        assert time.monotonic() - start < 10.0
        assert "timeout" in line, line
        assert_deferred(proxy, queue_id)
    finally:
        up.stop()
