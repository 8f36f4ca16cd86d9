"""The listener (issue 3): a conformant, hardened SMTP server with STARTTLS,
real AUTH and an elastic pre-fork pool.

Each test starts the real daemon on a free 127.0.0.1 port with its own
spool and a real aiosmtpd upstream (conftest.py, helpers.py), and talks to
it with real clients (smtplib, swaks, curl) or byte for byte.  TLS
certificates come from a CA made at test time (tlsca.py).
"""

import base64
import ctypes
import ctypes.util
import errno
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

import helpers
import tlsca
from helpers import LOCALHOST, RawSMTP, queue_id_of, wait_until

SENDER = "app@example.com"
RCPT = "someone@example.org"

ENHANCED_RE = re.compile(r"^\d{3}[ -]\d\.\d{1,3}\.\d{1,3} ")
QUICK = 3.0             # seconds for what should happen at once
TOOL_TIMEOUT = 20.0     # seconds for one run of swaks or curl
NOTHING_MORE = 1.0      # seconds we watch for something that must not come


def header_constant(path, name):
    """header_constant - the number a C header #defines as name"""
    text = (helpers.REPO_ROOT / path).read_text()
    m = re.search(rf"^#define\s+{name}\s+\(?(\d+)", text, re.M)
    assert m, f"no #define {name} in {path}"
    return int(m.group(1))


COMMAND_LINE_MAX = header_constant("smtpproxyd/smtpcmd.h", "SMTP_COMMAND_LINE_MAX")
MAX_ERRORS = header_constant("smtpproxyd/session.h", "SMTP_MAX_ERRORS")
POOL_SHRINK_IDLE = header_constant("smtpproxyd/master.h", "POOL_SHRINK_IDLE")


# ---------------------------------------------------------------- messages

def message(subject, body=b"Hello.\r\n"):
    """message - a small RFC 5322 message with CRLF line ends"""
    return (b"From: Legacy App <app@example.com>\r\n"
        b"To: Someone <someone@example.org>\r\n"
        b"Subject: " + subject.encode() + b"\r\n"
        b"Date: Fri, 21 Nov 2025 10:00:00 +0100\r\n"
        b"Message-ID: <" + subject.replace(" ", "-").encode() + b"@app.example.com>\r\n"
        b"\r\n" + body)


def message_of_size(subject, size):
    """message_of_size - a message of exactly size bytes in short CRLF lines"""
    head = message(subject, b"")
    need = size - len(head)
    assert need >= 2, f"{size} bytes is too small for a message"
    full, rest = divmod(need, 78)
    if rest == 1:
        full, rest = full - 1, 79
    body = (b"y" * 76 + b"\r\n") * full
    if rest:
        body += b"z" * (rest - 2) + b"\r\n"
    sent = head + body
    assert len(sent) == size
    return sent


def arrived_one(upstream, subject, sender=SENDER, rcpts=(RCPT,)):
    """arrived_one - the one message the upstream got; it is the one sent"""
    [got] = upstream.wait_for_messages(1)
    assert got.mail_from == sender, got.mail_from
    assert got.rcpt_tos == list(rcpts), got.rcpt_tos
    assert b"\r\nSubject: " + subject.encode() + b"\r\n" in got.content, got.content[:600]
    return got


def nothing_arrives(upstream):
    """nothing_arrives - the upstream sees no transaction for a while"""
    time.sleep(NOTHING_MORE)
    assert upstream.attempts == [], [a.content[:200] for a in upstream.attempts]


def spool_is_empty(proxy):
    """spool_is_empty - no file in tmp/, new/ or cur/"""
    left = {f: proxy.spool_names(f) for f in ("tmp", "new", "cur")}
    return not any(left.values()), left


# ---------------------------------------------------------------- client

def is_exempt_from_enhanced_codes(sent, code):
    """greeting, HELO/EHLO answers (RFC 2034 section 3) and 3xx continuations"""
    verb = sent.split(" ", 1)[0].upper()
    return sent == "<greeting>" or verb in ("HELO", "EHLO") or code in (334, 354)


class Client(RawSMTP):
    """RawSMTP that keeps a transcript of every reply and can start TLS.

    transcript: (what was sent just before, [raw reply lines]) per reply.
    """

    def __init__(self, port, timeout=helpers.CLIENT_TIMEOUT):
        self.transcript = []
        self._sent = "<greeting>"
        super().__init__(port, timeout)

    def reply(self):
        raw = []
        while True:
            line = self.reader.readline(4096)
            if not line:
                raise AssertionError(f"connection closed; got so far {raw!r}"
                    f" after {self._sent!r}")
            text = line.rstrip(b"\r\n").decode("utf-8", "replace")
            raw.append(text)
            if len(text) < 4 or text[3] != "-":
                break
        self.transcript.append((self._sent, raw))
        return int(raw[-1][:3]), [l[4:] for l in raw]

    def send(self, data):
        first = data.split(b"\r\n", 1)[0][:60]
        self._sent = first.decode("utf-8", "replace")
        super().send(data)

    def replies(self, n):
        """replies - the next n replies as (code, lines)"""
        return [self.reply() for _ in range(n)]

    def start_tls(self, context, server_hostname="localhost"):
        """start_tls - the client side of the handshake, after a 220"""
        self.reader.close()
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        self.reader = self.sock.makefile("rb")

    def expect_closed(self, timeout=QUICK):
        """expect_closed - the server closes; what it sent before, if anything"""
        self.sock.settimeout(timeout)
        try:
            return self.reader.read()
        except TimeoutError:
            raise AssertionError(f"connection still open {timeout:g} s later") from None
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return b""

    def unexempt_replies(self):
        """unexempt_replies - raw lines that must carry an enhanced code"""
        lines = []
        for sent, raw in self.transcript:
            if not is_exempt_from_enhanced_codes(sent, int(raw[-1][:3])):
                lines.extend((sent, line) for line in raw)
        return lines


def assert_enhanced_codes(client):
    bad = [(sent, line) for sent, line in client.unexempt_replies()
        if not ENHANCED_RE.match(line)]
    assert not bad, "replies without an enhanced status code:\n" + \
        "\n".join(f"  after {sent!r}: {line!r}" for sent, line in bad)


def transaction(c, msg, sender=SENDER, rcpts=(RCPT,)):
    """transaction - MAIL, RCPT, DATA, content on an open Client; DATA's reply"""
    code, text = c.cmd(f"MAIL FROM:<{sender}>")
    assert code == 250, (code, text)
    for rcpt in rcpts:
        code, text = c.cmd(f"RCPT TO:<{rcpt}>")
        assert code == 250, (rcpt, code, text)
    code, text = c.cmd("DATA")
    assert code == 354, (code, text)
    c.send(msg + b".\r\n")
    return c.reply()


def ehlo_extensions(lines):
    """ehlo_extensions - the EHLO keywords with parameters, comparable"""
    out = []
    for line in lines[1:]:
        words = line.split()
        if words[0].upper() == "AUTH":
            words = ["AUTH"] + sorted(w.upper() for w in words[1:])
        out.append(" ".join(words))
    return sorted(out)


def expected_extensions(size, starttls=False, auth=False):
    ext = ["PIPELINING", f"SIZE {size}", "8BITMIME", "ENHANCEDSTATUSCODES", "HELP"]
    if starttls:
        ext.append("STARTTLS")
    if auth:
        ext.append("AUTH LOGIN PLAIN")
    return sorted(ext)


# ---------------------------------------------------------------- TLS

@pytest.fixture(scope="session")
def test_ca(tmp_path_factory):
    return tlsca.make_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def server_cert(test_ca):
    return tlsca.make_server_cert(test_ca, tlsca.LOCAL_NAMES)


def tls_settings(cert):
    return {"tlscert": str(cert.cert), "tlskey": str(cert.key)}


def client_context(ca):
    """client_context - verifies the server against the test CA only"""
    context = ssl.create_default_context(cafile=str(ca.cert))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@pytest.fixture
def tls_proxy(make_proxy, server_cert):
    return make_proxy(config=tls_settings(server_cert))


# ---------------------------------------------------------------- AUTH

PASSWORDS = {
    "alice@example.com": "alice-plain-secret",
    "bob@example.com": "bob-sha512-secret",
    "carol@example.com": "carol-yescrypt-secret",
}


def sha512_crypt(password):
    """sha512_crypt - a $6$ hash of password, made by openssl passwd"""
    result = subprocess.run(["openssl", "passwd", "-6", "-stdin"],
        input=password, capture_output=True, text=True, timeout=10, check=True)
    hashed = result.stdout.strip()
    assert hashed.startswith("$6$"), hashed
    return hashed


def yescrypt(password):
    """yescrypt - a $y$ hash of password from libcrypt, or None without one"""
    name = ctypes.util.find_library("crypt")
    if name is None:
        return None
    lib = ctypes.CDLL(name)
    if not hasattr(lib, "crypt_gensalt"):
        return None
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong,
        ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    setting = lib.crypt_gensalt(b"$y$", 0, None, 0)
    if not setting:
        return None
    hashed = lib.crypt(password.encode(), setting)
    if not hashed or not hashed.startswith(b"$y$"):
        return None
    return hashed.decode()


@pytest.fixture(scope="session")
def local_passwords():
    """local_passwords - the localpassword= of each account (None: none)"""
    return {
        "alice@example.com": PASSWORDS["alice@example.com"],
        "bob@example.com": sha512_crypt(PASSWORDS["bob@example.com"]),
        "carol@example.com": yescrypt(PASSWORDS["carol@example.com"]),
    }


def auth_accounts(upstream, local_passwords):
    relay = {"smtphost": LOCALHOST, "smtpport": upstream.port,
        "localhostname": "relay.example.org"}
    accounts = {"default": dict(relay)}
    for name, stored in local_passwords.items():
        if stored is not None:
            accounts[name] = {**relay, "localpassword": stored}
    accounts["alias@example.com"] = {"use": "alice@example.com"}
    accounts["nopass@example.com"] = dict(relay)
    return accounts


@pytest.fixture
def make_auth_proxy(make_proxy, upstream, local_passwords):
    def make(mode="optional", config=None):
        return make_proxy(config={"auth": mode, **(config or {})},
            accounts=auth_accounts(upstream, local_passwords))
    return make


def auth_plain(user, password):
    """auth_plain - the AUTH PLAIN command with an initial response"""
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return f"AUTH PLAIN {token}"


# ================================================================ real clients

def test_smtplib_delivers_a_message_in_plain_smtp(proxy, upstream):
    with smtplib.SMTP(LOCALHOST, proxy.port, local_hostname="client.test",
            timeout=helpers.CLIENT_TIMEOUT) as client:
        client.sendmail(SENDER, [RCPT], message("smtplib plain"))
    arrived_one(upstream, "smtplib plain")


def test_smtplib_delivers_a_message_over_starttls_verified_against_the_ca(
        tls_proxy, upstream, test_ca):
    with smtplib.SMTP(LOCALHOST, tls_proxy.port, local_hostname="client.test",
            timeout=helpers.CLIENT_TIMEOUT) as client:
        client.starttls(context=client_context(test_ca))
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
        client.sendmail(SENDER, [RCPT], message("smtplib starttls"))
    arrived_one(upstream, "smtplib starttls")


@pytest.mark.parametrize("account,kind", [
    ("alice@example.com", "plain"),
    ("bob@example.com", "sha512-crypt"),
    ("carol@example.com", "yescrypt"),
])
def test_smtplib_login_with_a_localpassword_delivers_a_message(
        make_auth_proxy, upstream, local_passwords, account, kind):
    if local_passwords[account] is None:
        pytest.skip(f"libcrypt here cannot make a {kind} hash")
    proxy = make_auth_proxy("optional")
    subject = f"smtplib login {kind}"
    with smtplib.SMTP(LOCALHOST, proxy.port, local_hostname="client.test",
            timeout=helpers.CLIENT_TIMEOUT) as client:
        code, _ = client.login(account, PASSWORDS[account])
        assert code == 235
        client.sendmail(account, [RCPT], message(subject))
    arrived_one(upstream, subject, sender=account)


def run_tool(args):
    """run_tool - run swaks or curl, bounded; fail with its output"""
    result = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=TOOL_TIMEOUT)
    assert result.returncode == 0, \
        f"{args[0]} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def swaks(port, subject, *extra, sender=SENDER):
    return run_tool(["swaks", "--server", LOCALHOST, "--port", str(port),
        "--helo", "client.test", "--from", sender, "--to", RCPT,
        "--header", f"Subject: {subject}", "--body", "Sent by swaks.",
        "--timeout", "10", *extra])


def test_swaks_delivers_a_message_over_starttls(tls_proxy, upstream, test_ca):
    out = swaks(tls_proxy.port, "swaks tls", "--tls", "--tls-verify",
        "--tls-ca-path", str(test_ca.cert))
    assert "STARTTLS" in out
    arrived_one(upstream, "swaks tls")


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_swaks_delivers_a_message_with_auth(make_auth_proxy, upstream, mechanism):
    proxy = make_auth_proxy("required")
    account = "alice@example.com"
    swaks(proxy.port, f"swaks auth {mechanism}", "--auth", mechanism,
        "--auth-user", account, "--auth-password", PASSWORDS[account],
        sender=account)
    arrived_one(upstream, f"swaks auth {mechanism}", sender=account)


def test_swaks_delivers_a_message_with_pipelining(proxy, upstream):
    out = swaks(proxy.port, "swaks pipeline", "--pipeline")
    assert "PIPELINING" in out
    arrived_one(upstream, "swaks pipeline")


def test_curl_delivers_a_message(proxy, upstream, tmp_path):
    path = tmp_path / "curl.eml"
    path.write_bytes(message("curl plain"))
    run_tool(["curl", "--silent", "--show-error", "--max-time", "10",
        f"smtp://{LOCALHOST}:{proxy.port}/client.test",
        "--mail-from", SENDER, "--mail-rcpt", RCPT, "--upload-file", str(path)])
    arrived_one(upstream, "curl plain")


def test_curl_delivers_a_message_over_starttls_verified_against_the_ca(
        tls_proxy, upstream, test_ca, tmp_path):
    path = tmp_path / "curl.eml"
    path.write_bytes(message("curl starttls"))
    run_tool(["curl", "--silent", "--show-error", "--max-time", "10",
        "--ssl-reqd", "--cacert", str(test_ca.cert),
        f"smtp://{LOCALHOST}:{tls_proxy.port}/client.test",
        "--mail-from", SENDER, "--mail-rcpt", RCPT, "--upload-file", str(path)])
    arrived_one(upstream, "curl starttls")


# ================================================================ EHLO

@pytest.mark.parametrize("starttls,auth", [
    (False, "off"), (True, "off"), (False, "optional"), (False, "required"),
    (True, "optional"),
], ids=["plain", "tls", "auth-optional", "auth-required", "tls-and-auth"])
def test_ehlo_lists_exactly_the_configured_extensions(
        make_auth_proxy, server_cert, starttls, auth):
    config = {"maxmessagesize": 1048576}
    if starttls:
        config.update(tls_settings(server_cert))
    proxy = make_auth_proxy(auth, config)
    with Client(proxy.port) as c:
        code, lines = c.cmd("EHLO client.test")
    assert code == 250
    assert lines[0].split()[0] == "proxy.test"
    assert ehlo_extensions(lines) == expected_extensions(1048576, starttls,
        auth != "off")


def test_starttls_is_no_longer_offered_once_tls_is_up(
        make_auth_proxy, server_cert, test_ca):
    proxy = make_auth_proxy("optional", {"maxmessagesize": 1048576,
        **tls_settings(server_cert)})
    with Client(proxy.port) as c:
        assert c.cmd("EHLO client.test")[0] == 250
        assert c.cmd("STARTTLS")[0] == 220
        c.start_tls(client_context(test_ca))
        code, lines = c.cmd("EHLO client.test")
    assert code == 250
    assert ehlo_extensions(lines) == expected_extensions(1048576, False, True)


def test_size_extension_shows_maxmessagesize(make_proxy):
    proxy = make_proxy(config={"maxmessagesize": 123457})
    with Client(proxy.port) as c:
        code, lines = c.cmd("EHLO client.test")
    assert code == 250
    assert "SIZE 123457" in lines[1:]


def test_helo_is_answered_without_extensions(proxy):
    with Client(proxy.port) as c:
        code, lines = c.cmd("HELO client.test")
    assert code == 250 and len(lines) == 1


# ================================================================ replies

def test_vrfy_is_answered_252(proxy):
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd(f"VRFY {RCPT}")[0] == 252


def test_expn_is_answered_502(proxy):
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("EXPN staff")[0] == 502


def test_an_unknown_command_is_answered_500(proxy):
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("XYZZY plugh")[0] == 500


def test_rcpt_before_mail_is_answered_503(proxy):
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd(f"RCPT TO:<{RCPT}>")[0] == 503


def test_a_second_mail_in_one_transaction_is_answered_503(proxy):
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 503


def test_a_malformed_sender_address_is_answered_501(proxy):
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd(f"MAIL FROM:<{SENDER}")[0] == 501


def test_ehlo_without_a_domain_is_answered_501(proxy):
    with Client(proxy.port) as c:
        assert c.cmd("EHLO")[0] == 501


def test_every_reply_carries_an_enhanced_status_code(make_auth_proxy):
    proxy = make_auth_proxy("optional", {"maxmessagesize": 10000, "maxrecipients": 2})
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        for line in ["NOOP", "RSET", f"VRFY {RCPT}", "EXPN staff", "HELP",
                "XYZZY", f"RCPT TO:<{RCPT}>", "DATA", f"MAIL FROM:<{SENDER}",
                f"MAIL FROM:<{SENDER}> XYZZY=1", f"MAIL FROM:<{SENDER}> SIZE=10001",
                "STARTTLS", "AUTH CRAM-MD5",
                auth_plain("alice@example.com", "wrong"),
                auth_plain("alice@example.com", PASSWORDS["alice@example.com"]),
                auth_plain("alice@example.com", PASSWORDS["alice@example.com"]),
                "MAIL FROM:<bob@example.com>",
                "MAIL FROM:<alice@example.com>", "MAIL FROM:<alice@example.com>",
                "RCPT TO:<a@example.org>", "RCPT TO:<b@example.org>",
                "RCPT TO:<c@example.org>", "DATA"]:
            c.cmd(line)
        c.send(message("enhanced") + b".\r\n")
        c.reply()
        c.cmd("MAIL FROM:<alice@example.com>")
        c.cmd(f"RCPT TO:<{RCPT}>")
        c.cmd("DATA")
        c.send(message_of_size("too big", 10001) + b".\r\n")
        c.reply()
        c.cmd("NOOP " + "x" * (COMMAND_LINE_MAX + 10))
        c.cmd("NO\x01OP")
        c.cmd("QUIT")
    codes = sorted({int(raw[-1][:3]) for _, raw in c.transcript})
    assert codes == [214, 220, 221, 235, 250, 252, 354, 452, 500, 501, 502, 503,
        504, 535, 550, 552, 555], codes
    assert_enhanced_codes(c)


def test_replies_around_starttls_and_required_auth_carry_enhanced_status_codes(
        make_auth_proxy, server_cert, test_ca):
    proxy = make_auth_proxy("required", tls_settings(server_cert))
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 530
        assert c.cmd("STARTTLS")[0] == 220
        c.start_tls(client_context(test_ca))
        c.cmd("EHLO client.test")
        assert c.cmd("STARTTLS")[0] == 503
        assert c.cmd(auth_plain("alice@example.com",
            PASSWORDS["alice@example.com"]))[0] == 235
        code, text = transaction(c, message("tls enhanced"), sender="alice@example.com")
        assert code == 250, (code, text)
        c.cmd("QUIT")
    assert_enhanced_codes(c)


# ================================================================ pipelining

def test_a_pipelined_transaction_is_answered_in_order_each_command_once(proxy, upstream):
    with Client(proxy.port) as c:
        c.send(b"EHLO client.test\r\n"
            + f"MAIL FROM:<{SENDER}>\r\n".encode()
            + b"RCPT TO:<one@example.org>\r\nRCPT TO:<two@example.org>\r\nDATA\r\n")
        codes = [code for code, _ in c.replies(5)]
        assert codes == [250, 250, 250, 250, 354]
        c.send(message("pipelined") + b".\r\nNOOP\r\nVRFY x\r\nRSET\r\nQUIT\r\n")
        (code, text), *rest = c.replies(5)
        queue_id_of(code, text[0])
        assert [code for code, _ in rest] == [250, 252, 250, 221]
        assert c.expect_closed() == b""
    arrived_one(upstream, "pipelined", rcpts=("one@example.org", "two@example.org"))


def test_pipelined_errors_are_answered_in_order_each_command_once(proxy):
    with Client(proxy.port) as c:
        c.send(b"EHLO client.test\r\nNOOP\r\nXYZZY\r\nVRFY x\r\n"
            + f"RCPT TO:<{RCPT}>\r\n".encode()
            + f"MAIL FROM:<{SENDER}\r\n".encode() + b"EXPN x\r\nQUIT\r\n")
        codes = [code for code, _ in c.replies(8)]
        assert codes == [250, 250, 500, 252, 503, 501, 502, 221]
        assert c.expect_closed() == b""


def test_a_thousand_pipelined_commands_get_a_thousand_replies(proxy):
    # More replies than one output buffer holds, more commands than one read.
    n = 1000
    with Client(proxy.port) as c:
        c.send(b"NOOP\r\n" * n + b"QUIT\r\n")
        codes = [code for code, _ in c.replies(n + 1)]
        assert codes == [250] * n + [221]
        assert c.expect_closed() == b""


# ================================================================ limits

@pytest.fixture
def small_proxy(make_proxy):
    return make_proxy(config={"maxmessagesize": 10000, "maxrecipients": 3})


def test_mail_with_size_over_maxmessagesize_is_answered_552(small_proxy):
    with Client(small_proxy.port) as c:
        c.cmd("EHLO client.test")
        code, text = c.cmd(f"MAIL FROM:<{SENDER}> SIZE=10001")
        assert code == 552, text
        assert text[0].startswith("5.3.4 "), text


def test_mail_with_size_at_maxmessagesize_is_accepted(small_proxy):
    with Client(small_proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd(f"MAIL FROM:<{SENDER}> SIZE=10000")[0] == 250


def test_data_over_maxmessagesize_is_answered_552_and_nothing_is_kept(small_proxy, upstream):
    with Client(small_proxy.port) as c:
        c.cmd("EHLO client.test")
        code, text = transaction(c, message_of_size("too big", 10001))
        assert code == 552, text
        assert text[0].startswith("5.3.4 "), text
        empty, left = spool_is_empty(small_proxy)
        assert empty, left
    nothing_arrives(upstream)
    assert spool_is_empty(small_proxy)[0]


def test_much_too_big_data_is_read_to_its_end_and_the_session_goes_on(small_proxy, upstream):
    with Client(small_proxy.port) as c:
        c.cmd("EHLO client.test")
        code, text = transaction(c, message_of_size("far too big", 2_000_000))
        assert code == 552, text
        assert c.cmd("NOOP")[0] == 250
        code, text = transaction(c, message("after too big"))
        queue_id_of(code, text[0])
    arrived_one(upstream, "after too big")


def test_message_of_exactly_maxmessagesize_bytes_is_accepted(small_proxy, upstream):
    with Client(small_proxy.port) as c:
        c.cmd("EHLO client.test")
        code, text = transaction(c, message_of_size("just fits", 10000))
        queue_id_of(code, text[0])
    arrived_one(upstream, "just fits")


def test_recipient_past_maxrecipients_is_answered_452(small_proxy):
    with Client(small_proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        for n in range(3):
            assert c.cmd(f"RCPT TO:<r{n}@example.org>")[0] == 250
        code, text = c.cmd("RCPT TO:<r3@example.org>")
        assert code == 452, text
        assert text[0].startswith("4.5.3 "), text


def test_message_goes_to_the_recipients_accepted_before_the_limit(small_proxy, upstream):
    with Client(small_proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        for n in range(5):
            c.cmd(f"RCPT TO:<r{n}@example.org>")
        assert c.cmd("DATA")[0] == 354
        c.send(message("limited") + b".\r\n")
        code, text = c.reply()
        queue_id_of(code, text[0])
    arrived_one(upstream, "limited", rcpts=[f"r{n}@example.org" for n in range(3)])


def test_command_line_over_the_limit_is_answered_500_and_the_session_goes_on(proxy):
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        code, text = c.cmd("NOOP " + "x" * (COMMAND_LINE_MAX + 1 - len("NOOP ")))
        assert code == 500, text
        assert c.cmd("NOOP")[0] == 250
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250


def test_command_line_of_the_limit_with_its_crlf_is_accepted(proxy):
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("NOOP " + "x" * (COMMAND_LINE_MAX - 2 - len("NOOP ")))[0] == 250


def test_a_100_kib_command_line_is_answered_500_exactly_once(proxy):
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        c.send(b"NOOP " + b"x" * 102400 + b"\r\nVRFY x\r\nQUIT\r\n")
        codes = [code for code, _ in c.replies(3)]
        assert codes == [500, 252, 221]
        assert c.expect_closed() == b""


def test_idle_client_gets_421_and_is_closed(make_proxy):
    proxy = make_proxy(config={"timeout": 1})
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        start = time.monotonic()
        c.sock.settimeout(QUICK)
        code, text = c.reply()
        waited = time.monotonic() - start
        assert code == 421, text
        assert ENHANCED_RE.match(f"421 {text[0]}"), text
        assert 0.8 <= waited <= QUICK
        assert c.expect_closed() == b""


def test_client_idle_in_the_middle_of_data_gets_421_and_nothing_is_kept(make_proxy, upstream):
    proxy = make_proxy(config={"timeout": 1})
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert c.cmd(f"RCPT TO:<{RCPT}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(message("stalled", b"half a line"))
        c.sock.settimeout(QUICK)
        try:
            code, text = c.reply()
        except AssertionError as e:
            raise AssertionError(f"closed without a 421: {e}") from None
        assert code == 421, text
        assert c.expect_closed() == b""
    wait_until(lambda: spool_is_empty(proxy)[0], QUICK, "an empty spool")
    nothing_arrives(upstream)


def test_too_many_bad_commands_get_421_and_close(proxy):
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        for n in range(MAX_ERRORS - 1):
            assert c.cmd(f"XYZZY {n}")[0] == 500
        code, text = c.cmd("XYZZY last")
        assert code == 421, text
        assert c.expect_closed() == b""


def test_too_many_pipelined_bad_commands_get_421_and_nothing_after(proxy):
    with Client(proxy.port) as c:
        c.send(b"".join(b"XYZZY %d\r\n" % n for n in range(MAX_ERRORS + 5)))
        codes = [code for code, _ in c.replies(MAX_ERRORS)]
        assert codes == [500] * (MAX_ERRORS - 1) + [421]
        assert c.expect_closed() == b""


# ================================================================ smuggling

SMUGGLED = (b"MAIL FROM:<evil@example.com>\r\n"
    b"RCPT TO:<victim@example.net>\r\n"
    b"DATA\r\n"
    b"From: evil@example.com\r\n"
    b"\r\n"
    b"smuggled\r\n")


@pytest.mark.parametrize("sequence", [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n"],
    ids=["LF.LF", "CR.CR", "LF.CRLF", "CRLF.LF"])
def test_smuggled_end_of_data_stays_text_of_one_message(proxy, upstream, sequence):
    # Were the sequence an end of data, the MAIL, RCPT and DATA behind it
    # would start a second message that the real end then completes.
    subject = f"smuggling {sequence!r}"
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        code, text = transaction(c, message(subject, b"before" + sequence + SMUGGLED))
        queue_id_of(code, text[0])
        # One reply for the whole DATA: the next one answers our QUIT.
        assert c.cmd("QUIT")[0] == 221
    got = arrived_one(upstream, subject)
    assert got.content.endswith(b"\r\nbefore\r\n.\r\n" + SMUGGLED), got.content[-300:]
    time.sleep(NOTHING_MORE)
    assert len(upstream.attempts) == 1, [a.mail_from for a in upstream.attempts]


# ================================================================ STARTTLS

def test_command_pipelined_behind_starttls_is_not_executed(tls_proxy, test_ca):
    with Client(tls_proxy.port) as c:
        c.cmd("EHLO client.test")
        c.send(b"STARTTLS\r\nRSET\r\n")
        assert c.reply()[0] == 220
        c.start_tls(client_context(test_ca))
        code, lines = c.cmd("EHLO client.test")
        # The injected RSET would have been answered first, with one line.
        assert code == 250 and len(lines) > 1, lines
        assert c.cmd("QUIT")[0] == 221
        assert c.expect_closed() == b""


def test_mail_pipelined_behind_starttls_does_not_open_a_transaction(
        tls_proxy, upstream, test_ca):
    with Client(tls_proxy.port) as c:
        c.cmd("EHLO client.test")
        c.send(f"STARTTLS\r\nMAIL FROM:<{SENDER}>\r\n".encode())
        assert c.reply()[0] == 220
        c.start_tls(client_context(test_ca))
        # Had the injected MAIL been run inside TLS, a transaction would be
        # open now and RCPT would be accepted.
        code, text = c.cmd(f"RCPT TO:<{RCPT}>")
        assert code == 503, f"RCPT after injected MAIL answered {code} {text}"
        assert c.cmd("EHLO client.test")[0] == 250
        code, text = c.cmd(f"MAIL FROM:<{SENDER}>")
        assert code == 250, f"MAIL after TLS answered {code} {text}"
        assert c.cmd(f"RCPT TO:<{RCPT}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(message("after injection") + b".\r\n")
        code, text = c.reply()
        queue_id_of(code, text[0])
    arrived_one(upstream, "after injection")


def test_mail_right_after_the_tls_handshake_needs_a_new_ehlo(tls_proxy, test_ca):
    with Client(tls_proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("STARTTLS")[0] == 220
        c.start_tls(client_context(test_ca))
        code, text = c.cmd(f"MAIL FROM:<{SENDER}>")
        assert code == 503, f"MAIL without EHLO after TLS answered {code} {text}"


def test_starttls_during_a_transaction_is_answered_503(tls_proxy):
    with Client(tls_proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert c.cmd("STARTTLS")[0] == 503


def test_starttls_is_answered_502_without_tlscert(proxy):
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("STARTTLS")[0] == 502


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_starttls_refuses_tls_older_than_1_2(tls_proxy):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    mark = len(tls_proxy.log_text())
    with Client(tls_proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("STARTTLS")[0] == 220
        with pytest.raises((ssl.SSLError, ConnectionResetError)) as refused:
            c.start_tls(context)
    if "NO_PROTOCOLS_AVAILABLE" in str(refused.value).upper().replace(" ", "_"):
        pytest.skip("this OpenSSL cannot even offer TLS 1.0/1.1 as a client")
    # The daemon itself refused (not only our client): it says so at once.
    wait_until(lambda: "TLS handshake with 127.0.0.1 failed"
        in tls_proxy.log_text()[mark:], QUICK, "the daemon's handshake failure log line")


def test_authentication_does_not_survive_starttls(make_auth_proxy, server_cert, test_ca):
    proxy = make_auth_proxy("required", tls_settings(server_cert))
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd(auth_plain("alice@example.com",
            PASSWORDS["alice@example.com"]))[0] == 235
        assert c.cmd("STARTTLS")[0] == 220
        c.start_tls(client_context(test_ca))
        c.cmd("EHLO client.test")
        assert c.cmd("MAIL FROM:<alice@example.com>")[0] == 530


# ================================================================ AUTH

def test_mail_before_auth_is_answered_530_when_auth_is_required(make_auth_proxy):
    proxy = make_auth_proxy("required")
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        code, text = c.cmd(f"MAIL FROM:<{SENDER}>")
        assert code == 530, text
        assert text[0].startswith("5.7.0 "), text


def test_client_without_auth_may_send_when_auth_is_optional(make_auth_proxy, upstream):
    proxy = make_auth_proxy("optional")
    helpers.send_message(proxy.port, SENDER, [RCPT], message("no auth needed"))
    arrived_one(upstream, "no auth needed")


def test_wrong_password_is_answered_535(make_auth_proxy):
    proxy = make_auth_proxy("required")
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        code, text = c.cmd(auth_plain("alice@example.com", "not-her-password"))
        assert code == 535, text
        assert text[0].startswith("5.7.8 "), text
        assert c.cmd("MAIL FROM:<alice@example.com>")[0] == 530


def test_another_accounts_password_is_answered_535(make_auth_proxy):
    proxy = make_auth_proxy("required")
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd(auth_plain("alice@example.com", PASSWORDS["bob@example.com"]))[0] == 535


def test_the_crypt_hash_itself_is_not_a_password(make_auth_proxy, local_passwords):
    proxy = make_auth_proxy("required")
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd(auth_plain("bob@example.com",
            local_passwords["bob@example.com"]))[0] == 535


def test_repeated_wrong_passwords_are_answered_ever_more_slowly(make_auth_proxy):
    proxy = make_auth_proxy("required")
    took = []
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        for _ in range(3):
            start = time.monotonic()
            assert c.cmd(auth_plain("alice@example.com", "wrong"))[0] == 535
            took.append(time.monotonic() - start)
    assert took[1] >= took[0] + 0.25, took
    assert took[2] >= took[1] + 0.25, took
    assert took[2] <= 5.0, took


def test_account_without_localpassword_accepts_no_password(make_auth_proxy):
    proxy = make_auth_proxy("required")
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd(auth_plain("nopass@example.com", "anything"))[0] == 535
        assert c.cmd(auth_plain("stranger@example.net", "anything"))[0] == 535


def test_authenticated_client_may_not_send_as_another_account(make_auth_proxy):
    proxy = make_auth_proxy("required")
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd(auth_plain("alice@example.com", PASSWORDS["alice@example.com"]))[0] == 235
        code, text = c.cmd("MAIL FROM:<bob@example.com>")
        assert code == 550, text
        assert text[0].startswith("5.7.1 "), text


def test_authenticated_client_may_not_send_as_a_stranger_routed_by_default(make_auth_proxy):
    proxy = make_auth_proxy("required")
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd(auth_plain("alice@example.com", PASSWORDS["alice@example.com"]))[0] == 235
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 550


def test_authenticated_client_may_send_as_an_alias_of_its_account(make_auth_proxy, upstream):
    proxy = make_auth_proxy("required")
    with Client(proxy.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd(auth_plain("alice@example.com", PASSWORDS["alice@example.com"]))[0] == 235
        code, text = transaction(c, message("as alias"), sender="alias@example.com")
        queue_id_of(code, text[0])
    arrived_one(upstream, "as alias", sender="alias@example.com")


def test_auth_is_answered_503_when_auth_is_off(proxy):
    with Client(proxy.port) as c:
        code, lines = c.cmd("EHLO client.test")
        assert not any(l.upper().startswith("AUTH") for l in lines[1:]), lines
        code, text = c.cmd(auth_plain("alice@example.com", "whatever"))
        assert code == 503, text


# ================================================================ allow

def test_client_outside_allow_is_answered_554_and_closed(make_proxy):
    proxy = make_proxy(config={"allow": "10.0.0.0/8"}, start=False)
    proxy.start(wait=False)

    def answer():
        """everything the daemon sends, and whether it then closed"""
        try:
            s = socket.create_connection((LOCALHOST, proxy.port), timeout=QUICK)
        except ConnectionRefusedError:
            return None
        data = b""
        with s:
            try:
                while chunk := s.recv(4096):
                    data += chunk
            except TimeoutError:
                return data, "still open"
            except ConnectionResetError:
                pass
        return data, "closed"
    got = wait_until(answer, helpers.START_TIMEOUT, "an answer on the port")
    assert re.fullmatch(rb"554 5\.7\.1 [^\r\n]*\r\n", got[0]) and got[1] == "closed", got


# ================================================================ pool

POOL = {"processes": 2, "maxprocesses": 6}
BURST_CLIENTS = 20
BURST_HOLD = 1.0        # seconds each client keeps its session
BURST_TIMEOUT = 30.0    # seconds for the whole burst


def listening_sockets(port):
    """listening_sockets - "socket:[inode]" of the TCP listeners on port"""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            f = row.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                found.add(f"socket:[{f[9]}]")
    return found


def listener_pids(proxy):
    """listener_pids - children of the master that hold the listening socket"""
    sockets = listening_sockets(proxy.port)
    pids = []
    for pid in proxy.children():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in sockets:
                    pids.append(pid)
                    break
            except OSError:
                continue
    return pids


def held_session(port, subject, outcome):
    """held_session - one client that keeps its session BURST_HOLD seconds"""
    try:
        with Client(port, timeout=BURST_TIMEOUT) as c:
            c.cmd("EHLO client.test")
            time.sleep(BURST_HOLD)
            code, text = transaction(c, message(subject))
            c.cmd("QUIT")
            outcome[subject] = (code, text[0])
    except Exception as e:      # reported by the test, not lost in a thread
        outcome[subject] = (None, repr(e))


def burst(proxy):
    """burst - BURST_CLIENTS at once; (outcomes, listener counts seen)"""
    outcome, counts = {}, []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            counts.append(len(listener_pids(proxy)))
            time.sleep(0.05)
    sampler = threading.Thread(target=sample)
    sampler.start()
    clients = [threading.Thread(target=held_session,
        args=(proxy.port, f"burst {n}", outcome)) for n in range(BURST_CLIENTS)]
    deadline = time.monotonic() + BURST_TIMEOUT
    try:
        for t in clients:
            t.start()
        for t in clients:
            t.join(max(0.0, deadline - time.monotonic()))
    finally:
        stop.set()
        sampler.join()
    assert not any(t.is_alive() for t in clients), \
        f"clients still running after {BURST_TIMEOUT:g} s"
    return outcome, counts


@pytest.fixture
def pool_proxy(make_proxy):
    proxy = make_proxy(config=POOL)
    wait_until(lambda: len(listener_pids(proxy)) == POOL["processes"], QUICK,
        f"{POOL['processes']} listeners at start")
    return proxy


def test_twenty_concurrent_clients_are_all_served(pool_proxy, upstream):
    outcome, _ = burst(pool_proxy)
    refused = {s: o for s, o in outcome.items() if o[0] != 250}
    assert not refused and len(outcome) == BURST_CLIENTS, refused
    got = upstream.wait_for_messages(BURST_CLIENTS, timeout=10.0)
    subjects = {re.search(rb"Subject: (burst \d+)\r\n", m.content).group(1) for m in got}
    assert len(subjects) == BURST_CLIENTS


def test_pool_grows_above_processes_up_to_maxprocesses_while_busy(pool_proxy):
    _, counts = burst(pool_proxy)
    assert max(counts) > POOL["processes"], counts
    assert max(counts) <= POOL["maxprocesses"], counts


def voluntary_switches(pid):
    """voluntary_switches - how often pid has gone to sleep (and so woken)"""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise AssertionError(f"no voluntary_ctxt_switches for {pid}")


def test_a_new_connection_wakes_one_idle_listener_not_every_one(make_proxy):
    # With poll() on the shared socket every idle listener wakes for every
    # connection and all but one find nothing to accept.
    proxy = make_proxy(config={"processes": 4, "maxprocesses": 4})
    wait_until(lambda: len(listener_pids(proxy)) == 4, QUICK, "4 listeners at start")
    pids = listener_pids(proxy)
    before = {p: voluntary_switches(p) for p in pids}
    for _ in range(20):
        with Client(proxy.port) as c:
            assert c.cmd("QUIT")[0] == 221
    woke = sorted(voluntary_switches(p) - before[p] for p in pids)
    assert woke[0] < 5, f"every listener woke for the 20 connections: {woke}"


def test_pool_shrinks_back_to_processes_after_idle_time(pool_proxy):
    # Slow by design: a spare child goes after POOL_SHRINK_IDLE seconds idle.
    _, counts = burst(pool_proxy)
    assert max(counts) > POOL["processes"], "the pool never grew"
    wait_until(lambda: len(listener_pids(pool_proxy)) == POOL["processes"],
        POOL_SHRINK_IDLE + POOL["maxprocesses"] + 10.0,
        f"the pool back at {POOL['processes']} listeners")
    time.sleep(2.0)
    assert len(listener_pids(pool_proxy)) == POOL["processes"]


# ================================================================ spool trouble

@pytest.fixture
def small_tmpfs(tmp_path):
    """small_tmpfs - a 1 MiB tmpfs mounted for this test (root only)"""
    if os.geteuid() != 0:
        pytest.skip("disk-full tests need root to mount a small tmpfs")
    if shutil.which("mount") is None:
        pytest.skip("disk-full tests need mount(8)")
    where = tmp_path / "tmpfs"
    where.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700",
        "tmpfs", str(where)], capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield where
    result = subprocess.run(["umount", str(where)], capture_output=True,
        text=True, timeout=10)
    if result.returncode != 0:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=10)
        pytest.fail(f"umount {where}: {result.stderr.strip()}")


def fill_filesystem(folder):
    """fill_filesystem - write folder/filler until the file system is full"""
    path = folder / "filler"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 4096, 1):
            chunk = b"\0" * size
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return path


@pytest.fixture
def full_spool_proxy(small_tmpfs, make_proxy):
    """full_spool_proxy - a daemon whose msgdir is on a full file system"""
    proxy = make_proxy(config={"msgdir": str(small_tmpfs / "msgs")})
    proxy.filler = fill_filesystem(small_tmpfs)
    return proxy


def data_on_full_disk(c, subject):
    """data_on_full_disk - one transaction; the reply refusing it"""
    assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
    assert c.cmd(f"RCPT TO:<{RCPT}>")[0] == 250
    code, text = c.cmd("DATA")
    if code == 354:
        c.send(message(subject) + b".\r\n")
        code, text = c.reply()
    return code, text


def test_full_spool_is_answered_452_and_leaves_no_file(full_spool_proxy, upstream):
    with Client(full_spool_proxy.port) as c:
        c.cmd("EHLO client.test")
        code, text = data_on_full_disk(c, "disk full")
        assert (code, text[0][:6]) in ((452, "4.3.1 "), (451, "4.3.0 ")), (code, text)
        assert full_spool_proxy.spool_names("tmp") == []
        assert full_spool_proxy.spool_names("new") == []
    nothing_arrives(upstream)


def test_session_goes_on_after_a_full_spool(full_spool_proxy):
    with Client(full_spool_proxy.port) as c:
        c.cmd("EHLO client.test")
        assert data_on_full_disk(c, "disk full")[0] in (451, 452)
        assert c.cmd("NOOP")[0] == 250
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250


def test_message_is_accepted_once_space_returns(full_spool_proxy, upstream):
    with Client(full_spool_proxy.port) as c:
        c.cmd("EHLO client.test")
        assert data_on_full_disk(c, "disk full")[0] in (451, 452)
        full_spool_proxy.filler.unlink()
        code, text = transaction(c, message("space again"))
        queue_id_of(code, text[0])
    arrived_one(upstream, "space again")


def test_tmp_leftovers_older_than_36_hours_are_removed(make_proxy):
    proxy = make_proxy(start=False)
    tmp = proxy.msgdir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    stale = tmp / "1.M1P1Q1.crashed"
    stale.write_bytes(b"half a message")
    then = time.time() - 37 * 3600
    os.utime(stale, (then, then))
    proxy.start()
    wait_until(lambda: not stale.exists(), QUICK, f"{stale.name} to be removed")


def test_tmp_files_younger_than_36_hours_are_kept(make_proxy):
    proxy = make_proxy(start=False)
    tmp = proxy.msgdir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    young = tmp / "2.M2P2Q2.receiving"
    young.write_bytes(b"being written")
    then = time.time() - 35 * 3600
    os.utime(young, (then, then))
    proxy.start()
    time.sleep(NOTHING_MORE)
    assert young.exists()


# ---------------------------------------------------------------- recycling

RECYCLE_MAX = header_constant("common/spool.h", "SPOOL_RECYCLE_MAX")
RETRY_SOON = {"sleeptime": 1, "retrymin": 1, "retrymax": 1}


def after_our_received(content):
    """after_our_received - what the upstream got, our Received: field off"""
    fields, rest = helpers.split_header(content)
    assert helpers.field_name(fields[0]) == b"received", fields[0]
    return b"".join(fields[1:]) + rest


def a_free_file(proxy):
    """a_free_file - the inode of one of tmp/free.*, once there is one"""
    names = wait_until(proxy.free_names, QUICK, "a free file in tmp/")
    return (proxy.msgdir / "tmp" / names[0]).stat().st_ino


def queued_stat(proxy, queue_id):
    """queued_stat - (inode, bytes) of queue_id's spool file, which the
    relay may rename between finding and reading it"""
    for _ in range(20):
        content = proxy.read_queued(queue_id)
        path = proxy.find_queued(queue_id)
        assert content is not None and path is not None, proxy.queued()
        try:
            return path.stat().st_ino, content
        except FileNotFoundError:
            continue
    raise AssertionError(f"{queue_id} kept moving")


def held_in_spool(proxy, upstream, sent):
    """held_in_spool - send a message the upstream defers; (inode, bytes)
    of its spool file"""
    upstream.data_reply = "451 4.3.0 try again later"
    queue_id = helpers.send_message(proxy.port, SENDER, [RCPT], sent)
    return queued_stat(proxy, queue_id)


def test_short_message_reuses_a_long_ones_file_and_keeps_only_its_own_bytes(
        make_proxy, upstream):
    proxy = make_proxy(config=RETRY_SOON)
    long = message_of_size("long one", 100_000)
    helpers.send_message(proxy.port, SENDER, [RCPT], long)
    [got] = upstream.wait_for_messages(1)
    assert after_our_received(got.content) == long
    freed = a_free_file(proxy)
    short = message("short one")
    inode, content = held_in_spool(proxy, upstream, short)
    assert inode == freed
    assert content.endswith(b"\r\n" + short) and len(content) < 1000, content[-200:]
    upstream.data_reply = None
    second = upstream.wait_for_messages(2)[1]
    assert after_our_received(second.content) == short


def test_a_long_message_then_ever_shorter_ones_arrive_byte_exact(proxy, upstream):
    sent = [message_of_size("long", 200_000)] + [
        message_of_size(f"short {i}", 3000 - 80 * i) for i in range(30)]
    for i, msg in enumerate(sent):
        if i > 0:
            a_free_file(proxy)      # the one before is there to be reused
        helpers.send_message(proxy.port, SENDER, [RCPT], msg)
        upstream.wait_for_messages(i + 1)
    assert [after_our_received(g.content) for g in upstream.messages] == sent


def test_a_burst_leaves_no_more_free_files_than_the_pool_limit(make_proxy, upstream):
    proxy = make_proxy(config=RETRY_SOON)
    upstream.stop()         # all of them queued at once, then delivered
    count = RECYCLE_MAX + 30
    client = helpers.smtp_client(proxy.port)
    try:
        for i in range(count):
            client.sendmail(SENDER, [RCPT], message(f"burst {i}"))
    finally:
        client.quit()
    upstream.start()
    upstream.wait_for_messages(count, timeout=60)
    wait_until(lambda: not proxy.queued(), 10, "an empty queue")
    time.sleep(NOTHING_MORE)
    assert len(proxy.free_names()) == RECYCLE_MAX
    assert proxy.spool_names("tmp") == []


def test_free_files_of_a_previous_run_are_reused(make_proxy, upstream):
    proxy = make_proxy(config=RETRY_SOON, start=False)
    tmp = proxy.msgdir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    left = tmp / "free.1.M1P1Q1.earlier"
    left.write_bytes(b"an older message\r\n" * 1000)
    left.chmod(0o600)
    freed = left.stat().st_ino
    proxy.start()
    sent = message("after a restart")
    inode, content = held_in_spool(proxy, upstream, sent)
    assert inode == freed
    assert content.endswith(b"\r\n" + sent) and b"older" not in content
    assert proxy.free_names() == []
