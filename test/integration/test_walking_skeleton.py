"""The whole path, end to end (issue 2): a message handed to smtpproxyd by a
plain SMTP client is spooled durably and arrives, byte for byte, at the
upstream server of its sender's account.

Each test starts the real daemon on a free port with its own spool and
a real aiosmtpd upstream; see conftest.py and helpers.py.
"""

import email.utils
import os
import re
import signal
import smtplib
import socket
import time

import pytest

import helpers
from helpers import (RawSMTP, field_name, queue_id_of, send_message,
    smtp_client, split_header, submit, wait_until)

SENDER = "app@example.com"
RCPT = "someone@example.org"


def message(subject, body, date=True, message_id=True, extra=b""):
    """message - a small RFC 5322 message with CRLF line ends"""
    head = b"From: Legacy App <app@example.com>\r\n"
    head += b"To: Someone <someone@example.org>\r\n"
    head += b"Subject: " + subject.encode() + b"\r\n"
    if date:
        head += b"Date: Fri, 21 Nov 2025 10:00:00 +0100\r\n"
    if message_id:
        head += b"Message-ID: <" + subject.replace(" ", "-").encode() + b"@app.example.com>\r\n"
    head += extra
    return head + b"\r\n" + body


def after_our_received(content):
    """after_our_received - (our Received field, the bytes after it)"""
    fields, rest = split_header(content)
    assert field_name(fields[0]) == b"received", \
        f"first header field upstream is not our Received: {fields[0]!r}"
    return fields[0], b"".join(fields[1:]) + rest


def assert_arrived_exactly(content, sent):
    """assert_arrived_exactly - content is our Received line + sent, nothing else"""
    _, after = after_our_received(content)
    assert after == sent


def deliver_one(proxy, upstream, msg, rcpts=(RCPT,), sender=SENDER, mail_options=()):
    """deliver_one - send msg through the proxy; what the upstream got"""
    send_message(proxy.port, sender, rcpts, msg, mail_options)
    [got] = upstream.wait_for_messages(1)
    return got


def wait_spool_empty(proxy, timeout=5.0):
    wait_until(lambda: not proxy.queued(), timeout,
        f"new/ and cur/ to be empty (still: {proxy.queued()})")


# ---------------------------------------------------------------- harness

def test_upstream_fixture_records_crlf_dots_and_8bit_bytes_exactly(upstream):
    sent = message("harness", b"caf\xc3\xa9 \xff\xfe\r\n.dot\r\nbare\nlf\r\n\r\n")
    with smtplib.SMTP(helpers.LOCALHOST, upstream.port, timeout=5) as client:
        client.sendmail(SENDER, [RCPT], sent)
    [got] = upstream.wait_for_messages(1)
    assert got.content == sent
    assert got.mail_from == SENDER and got.rcpt_tos == [RCPT]


# ---------------------------------------------------------------- delivery

def test_message_to_one_recipient_is_delivered(proxy, upstream):
    got = deliver_one(proxy, upstream, message("one", b"Hello.\r\n"))
    assert got.mail_from == SENDER
    assert got.rcpt_tos == [RCPT]


def test_message_to_several_recipients_reaches_each_of_them_once(proxy, upstream):
    rcpts = ["a@example.org", "b@example.net", "c@example.org"]
    sent = message("several", b"To all of you.\r\n")
    send_message(proxy.port, SENDER, rcpts, sent)
    wait_until(lambda: sorted(r for m in upstream.messages for r in m.rcpt_tos) == rcpts,
        5.0, "all three recipients at the upstream")
    time.sleep(0.3)     # a duplicate would show up now
    got = upstream.messages
    assert sorted(r for m in got for r in m.rcpt_tos) == rcpts
    for m in got:
        assert m.mail_from == SENDER
        assert_arrived_exactly(m.content, sent)


def test_message_with_date_and_message_id_arrives_byte_for_byte_after_our_received_line(proxy, upstream):
    sent = message("exact", b"Line one.\r\nLine two.\r\n\r\n-- \r\nsig\r\n",
        extra=b"X-Folded: first part\r\n\tsecond part\r\n")
    got = deliver_one(proxy, upstream, sent)
    assert_arrived_exactly(got.content, sent)


def test_our_received_line_names_the_configured_hostname(proxy, upstream):
    got = deliver_one(proxy, upstream, message("received", b"x\r\n"))
    received, _ = after_our_received(got.content)
    assert b"proxy.test" in received


def test_message_without_date_and_message_id_gets_both_at_acceptance(proxy, upstream):
    sent = message("bare", b"No Date, no Message-ID.\r\n", date=False, message_id=False)
    got = deliver_one(proxy, upstream, sent)
    _, after = after_our_received(got.content)
    fields, rest = split_header(after)
    added = [f for f in fields if field_name(f) in (b"date", b"message-id")]
    kept = [f for f in fields if field_name(f) not in (b"date", b"message-id")]
    assert sorted(field_name(f) for f in added) == [b"date", b"message-id"]
    assert b"".join(kept) + rest == sent
    date = next(f for f in added if field_name(f) == b"date")
    assert email.utils.parsedate_to_datetime(date.split(b":", 1)[1].strip().decode()) is not None
    msgid = next(f for f in added if field_name(f) == b"message-id")
    assert re.fullmatch(rb"Message-ID:\s*<[^<>@\s]+@[^<>@\s]+>\r\n", msgid, re.I), msgid


def test_lines_starting_with_a_dot_survive_the_round_trip(proxy, upstream):
    body = (b".\r\n"
        b"..\r\n"
        b".leading dot\r\n"
        b"..two leading dots\r\n"
        b"middle . dot\r\n"
        b". \r\n"
        b"last\r\n")
    sent = message("dots", body)
    got = deliver_one(proxy, upstream, sent)
    assert_arrived_exactly(got.content, sent)


def test_8bit_bytes_arrive_unchanged(proxy, upstream):
    body = bytes(range(0x80, 0x100)) + b"\r\n" + "Grüße, façade, 日本\r\n".encode() + b"\xe9t\xe9\r\n"
    sent = message("8bit", body, extra=b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n")
    got = deliver_one(proxy, upstream, sent, mail_options=["BODY=8BITMIME"])
    assert_arrived_exactly(got.content, sent)


def test_998_byte_lines_arrive_unchanged(proxy, upstream):
    # RFC 5321 4.5.3.1.6: 1000 octets with CRLF, not counting a stuffed dot.
    body = b"x" * 998 + b"\r\n" + b"." + b"y" * 997 + b"\r\n" + b"z" * 998 + b"\r\n"
    sent = message("long lines", body, extra=b"X-Long: " + b"h" * 990 + b"\r\n")
    got = deliver_one(proxy, upstream, sent)
    assert_arrived_exactly(got.content, sent)


def test_bare_lf_in_the_body_arrives_as_crlf(proxy, upstream):
    head = message("bare lf", b"")
    with RawSMTP(proxy.port) as c:
        assert c.cmd("EHLO client.test")[0] == 250
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert c.cmd(f"RCPT TO:<{RCPT}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(head + b"one\ntwo\r\nthree\n\nfour\r\n.\r\n")
        code, text = c.reply()
        queue_id_of(code, text[0])
        c.cmd("QUIT")
    [got] = upstream.wait_for_messages(1)
    assert_arrived_exactly(got.content, head + b"one\r\ntwo\r\nthree\r\n\r\nfour\r\n")


def test_only_crlf_dot_crlf_ends_data(proxy, upstream):
    # A bare-LF "end of data" followed by a second transaction must stay
    # body text of the first message (no SMTP smuggling through us).
    head = message("smuggle", b"")
    smuggled = (b"before\n.\nMAIL FROM:<evil@example.com>\r\n"
        b"RCPT TO:<victim@example.net>\r\nDATA\r\nsmuggled\r\n")
    with RawSMTP(proxy.port) as c:
        assert c.cmd("EHLO client.test")[0] == 250
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert c.cmd(f"RCPT TO:<{RCPT}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(head + smuggled + b".\r\n")
        code, text = c.reply()
        queue_id_of(code, text[0])
        assert c.cmd("QUIT")[0] == 221
    [got] = upstream.wait_for_messages(1)
    time.sleep(0.3)
    assert len(upstream.messages) == 1
    assert got.rcpt_tos == [RCPT] and got.mail_from == SENDER
    assert b"MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.net>\r\n" in got.content
    assert got.content.endswith(b"smuggled\r\n")


def test_ehlo_name_upstream_is_the_accounts_localhostname(proxy, upstream):
    got = deliver_one(proxy, upstream, message("ehlo", b"x\r\n"))
    assert got.ehlo == "relay.example.org"


# ---------------------------------------------------------------- accounts

@pytest.fixture
def exact_account_proxy(make_proxy, upstream):
    return make_proxy(accounts={
        "known@example.com": {
            "smtphost": helpers.LOCALHOST,
            "smtpport": upstream.port,
            "localhostname": "relay.example.org",
        }})


def test_unknown_sender_is_refused_at_mail_from(exact_account_proxy):
    with smtp_client(exact_account_proxy.port) as c:
        code, text = c.mail("stranger@example.net")
        assert code == 550, (code, text)
        assert re.match(rb"5\.\d+\.\d+ ", text), text


def test_sender_with_an_exact_account_is_accepted_without_a_default(exact_account_proxy, upstream):
    sent = message("known", b"x\r\n")
    send_message(exact_account_proxy.port, "known@example.com", [RCPT], sent)
    [got] = upstream.wait_for_messages(1)
    assert got.mail_from == "known@example.com"


# ---------------------------------------------------------------- spool

def test_data_reply_names_the_queue_id_of_the_spooled_file(proxy, upstream):
    upstream.data_reply = "451 4.3.0 try again later"   # keep it spooled
    sent = message("queued", b"Keep me.\r\n")
    queue_id = send_message(proxy.port, SENDER, [RCPT], sent)
    assert re.fullmatch(r"\d+\.M\d+P\d+Q\d+\.\S+", queue_id), queue_id
    content = proxy.read_queued(queue_id)
    assert content is not None, f"{queue_id} not in new/ or cur/: {proxy.queued()}"
    assert sent in content
    assert proxy.spool_names("tmp") == []


def test_temporary_failure_at_data_keeps_the_message_until_the_upstream_accepts(make_proxy, upstream):
    proxy = make_proxy(config={"sleeptime": 1, "retrymin": 1, "retrymax": 1})
    upstream.data_reply = "451 4.3.0 try again later"
    sent = message("tempfail", b"Deliver me later.\r\n")
    queue_id = send_message(proxy.port, SENDER, [RCPT], sent)
    upstream.wait_for_attempts(1)
    time.sleep(0.3)
    assert proxy.find_queued(queue_id), f"{queue_id} left the spool: {proxy.queued()}"
    upstream.data_reply = None
    [got] = upstream.wait_for_messages(1, timeout=8.0)
    assert_arrived_exactly(got.content, sent)
    wait_spool_empty(proxy)
    time.sleep(1.5)
    assert len(upstream.messages) == 1


def test_message_waits_for_a_down_upstream_across_a_restart(make_proxy, upstream):
    upstream.stop()
    proxy = make_proxy(config={"sleeptime": 1, "retrymin": 1, "retrymax": 1})
    sent = message("down", b"Survive a restart.\r\n")
    queue_id = send_message(proxy.port, SENDER, [RCPT], sent)
    time.sleep(1.5)     # at least one failed attempt
    assert proxy.find_queued(queue_id), f"{queue_id} left the spool: {proxy.queued()}"

    proxy.restart()
    assert proxy.find_queued(queue_id), f"{queue_id} lost in the restart: {proxy.queued()}"
    time.sleep(0.5)
    assert proxy.find_queued(queue_id)

    upstream.start()
    [got] = upstream.wait_for_messages(1, timeout=8.0)
    assert got.mail_from == SENDER and got.rcpt_tos == [RCPT]
    assert_arrived_exactly(got.content, sent)
    wait_spool_empty(proxy)
    assert not proxy.spool_names("failed")


def test_commit_wakes_the_relay_at_once(proxy, upstream):
    # sleeptime is 30: only the trigger FIFO can make this fast.
    time.sleep(1.0)     # let the relay's start-up scan pass
    for n in range(2):
        start = time.monotonic()
        send_message(proxy.port, SENDER, [RCPT], message(f"wake {n}", b"now\r\n"))
        upstream.wait_for_messages(n + 1, timeout=2.0)
        assert time.monotonic() - start < 2.0


@pytest.mark.parametrize("syntax", ["ini", "libconfig"])
def test_both_config_syntaxes_drive_the_same_run(make_proxy, upstream, syntax):
    proxy = make_proxy(syntax=syntax)
    sent = message(f"syntax {syntax}", b"Same path.\r\n")
    got = deliver_one(proxy, upstream, sent)
    assert got.ehlo == "relay.example.org"
    assert_arrived_exactly(got.content, sent)
    assert helpers.read_greeting(proxy.port).startswith(b"220 proxy.test")


def test_accepted_message_and_its_delivery_are_logged_with_the_queue_id(proxy, upstream):
    queue_id = send_message(proxy.port, SENDER, [RCPT], message("logged", b"x\r\n"))
    upstream.wait_for_messages(1)
    where = f"{helpers.LOCALHOST}:{upstream.port}"

    def lines_with(*words):
        return [l for l in proxy.log_text().splitlines() if all(w in l for w in words)]
    wait_until(lambda: lines_with(queue_id, SENDER), 2.0, "an acceptance log line")
    wait_until(lambda: lines_with(queue_id, where), 2.0, "a delivery log line")


# ---------------------------------------------------------------- session

def test_greeting_names_the_configured_hostname(proxy):
    assert helpers.read_greeting(proxy.port).startswith(b"220 proxy.test")


def test_ehlo_announces_what_is_implemented(proxy):
    with RawSMTP(proxy.port) as c:
        code, lines = c.cmd("EHLO client.test")
        assert code == 250
        keywords = {l.split()[0].upper() for l in lines[1:]}
        assert {"PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES"} <= keywords
        assert not {"STARTTLS", "AUTH"} & keywords


def test_quit_is_answered_221(proxy):
    with RawSMTP(proxy.port) as c:
        assert c.cmd("QUIT")[0] == 221


def test_unknown_command_is_answered_500(proxy):
    with RawSMTP(proxy.port) as c:
        assert c.cmd("EHLO client.test")[0] == 250
        assert c.cmd("FROB x")[0] == 500


def test_rcpt_before_mail_is_a_bad_sequence(proxy):
    with RawSMTP(proxy.port) as c:
        assert c.cmd("EHLO client.test")[0] == 250
        assert c.cmd(f"RCPT TO:<{RCPT}>")[0] == 503


def test_data_before_mail_is_a_bad_sequence(proxy):
    with RawSMTP(proxy.port) as c:
        assert c.cmd("EHLO client.test")[0] == 250
        assert c.cmd("DATA")[0] == 503


def test_data_without_an_accepted_recipient_is_refused(proxy):
    # RFC 5321 3.3: 503 (out of sequence) or 554 (no valid recipients).
    with RawSMTP(proxy.port) as c:
        assert c.cmd("EHLO client.test")[0] == 250
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        code, text = c.cmd("DATA")
        assert code in (503, 554), (code, text)
        assert c.cmd("NOOP")[0] == 250


def test_rset_and_noop_are_answered_250(proxy):
    with RawSMTP(proxy.port) as c:
        assert c.cmd("EHLO client.test")[0] == 250
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert c.cmd("NOOP")[0] == 250
        assert c.cmd("RSET")[0] == 250
        assert c.cmd(f"RCPT TO:<{RCPT}>")[0] == 503


def test_two_messages_in_one_session_are_both_delivered(proxy, upstream):
    first, second = message("first", b"1\r\n"), message("second", b"2\r\n")
    with smtp_client(proxy.port) as c:
        ids = [queue_id_of(*submit(c, SENDER, [RCPT], m)) for m in (first, second)]
        c.quit()
    assert ids[0] != ids[1]
    got = upstream.wait_for_messages(2)
    assert sorted(after_our_received(m.content)[1] for m in got) == sorted([first, second])


# ---------------------------------------------------------------- master

def test_a_child_that_dies_is_replaced(proxy, upstream):
    before = wait_until(proxy.children, 2.0, "children of the master")
    victim = before[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in proxy.children()
        and len(proxy.children()) >= len(before), 5.0,
        f"a replacement for child {victim} (children: {proxy.children()})")
    got = deliver_one(proxy, upstream, message("after crash", b"x\r\n"))
    assert got.rcpt_tos == [RCPT]


# ---------------------------------------------------------------- command line

GOOD_INI = """\
[config]
port=2525
listen=127.0.0.1
msgdir=msgs
[logging]
level=INFO
[default]
smtphost=127.0.0.1
smtpport=2526
"""


def test_config_check_prints_config_ok_and_exits_0(tmp_path):
    path = tmp_path / "good.ini"
    path.write_text(GOOD_INI)
    (tmp_path / "msgs").mkdir()
    result = helpers.run_daemon("-t", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert "config OK" in result.stdout + result.stderr


@pytest.mark.parametrize("key,value", [
    ("smtpsecurity", "TLS"),
    ("smtpport", "twenty-five"),
    ("popssl", "maybe"),
])
def test_config_check_names_file_and_line_of_a_bad_value_and_exits_1(tmp_path, key, value):
    path = tmp_path / "bad.ini"
    path.write_text(GOOD_INI.replace("smtpport=2526\n", "") + f"{key}={value}\n")
    line = len(path.read_text().splitlines())
    result = helpers.run_daemon("-t", "-c", str(path))
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert f"{path}:{line}: " in result.stdout + result.stderr


GOOD_CONF = """\
config = {
  port = 2525;
  listen = "127.0.0.1";
  msgdir = "msgs";
};
logging = {
  level = "INFO";
};
accounts = (
  {
    address = "default";
    smtphost = "127.0.0.1";
    smtpport = 2526;
  }
);
"""


def test_config_check_names_file_and_line_of_a_bad_value_in_libconfig_syntax(tmp_path):
    path = tmp_path / "bad.conf"
    path.write_text(GOOD_CONF.replace('smtpport = 2526;', 'smtpsecurity = "TLS";'))
    line = 1 + next(n for n, l in enumerate(path.read_text().splitlines()) if "TLS" in l)
    result = helpers.run_daemon("-t", "-c", str(path))
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert f"{path}:{line}: " in result.stdout + result.stderr


def test_unknown_key_is_a_warning_with_file_and_line(tmp_path):
    path = tmp_path / "old.ini"
    path.write_text(GOOD_INI + "smtptls=true\n")
    line = len(path.read_text().splitlines())
    (tmp_path / "msgs").mkdir()
    result = helpers.run_daemon("-t", "-c", str(path))
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert f"{path}:{line}: " in result.stdout + result.stderr
    assert "config OK" in result.stdout + result.stderr


def test_unknown_option_exits_2():
    result = helpers.run_daemon("-Z")
    assert result.returncode == 2, (result.stdout, result.stderr)


def test_version_option_prints_a_version():
    result = helpers.run_daemon("-V")
    assert result.returncode == 0, result.stderr
    assert re.search(r"\d+\.\d+", result.stdout + result.stderr)


def test_port_already_in_use_exits_3(make_proxy):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind((helpers.LOCALHOST, 0))
        blocker.listen(1)
        proxy = make_proxy(config={"port": blocker.getsockname()[1]}, start=False)
        proxy.start(wait=False)
        try:
            rc = proxy.proc.wait(10)
        finally:
            proxy.stop()
    assert rc == 3, proxy.log_text()
