"""Operations (issue 5): a daemon an admin can run as a service, inspect
and forget — signals (HUP reload, TERM, kill -9 of children), privilege
drop, file logging with rotation under load, daemonizing with a pidfile,
and smtpproxyctl against a running and a stopped daemon.

Each test starts the real daemon (conftest.make_proxy, or without -f
through DetachedDaemon below) with its own spool and real aiosmtpd
upstreams.  Every wait is bounded, everything is on 127.0.0.1, and every
process started here is stopped by its own PID (or process group).
"""

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

import helpers
from helpers import (LOCALHOST, RawSMTP, queue_id_of, send_message,
    smtp_client, submit, wait_until)

CTL = os.environ.get("SMTPPROXYCTL") or str(helpers.REPO_ROOT / "smtpproxyd" / "smtpproxyctl")
SENDER = "app@example.com"
RCPT = "someone@example.org"
RUN_AS = "smtpproxy-test"
CTL_TIMEOUT = 10.0

# date time ident[pid]: LEVEL: text
LOG_LINE_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [\w./-]+\[\d+\]: "
    r"(DEBUG|INFO|WARNING|ERROR|CRITICAL): \S.*$")
RELAY_STARTED_RE = re.compile(r"smtpproxyd/relay\[(\d+)\]: INFO: relay started")


# ---------------------------------------------------------------- helpers

def message(subject, body=b"Hello.\r\n"):
    """message - a small RFC 5322 message with CRLF line ends"""
    return (b"From: Legacy App <app@example.com>\r\n"
        b"To: Someone <someone@example.org>\r\n"
        b"Subject: " + subject.encode() + b"\r\n"
        b"Date: Fri, 21 Nov 2025 10:00:00 +0100\r\n"
        b"Message-ID: <" + subject.replace(" ", "-").encode() + b"@app.example.com>\r\n"
        b"\r\n" + body)


def subjects(upstream):
    """subjects - the Subject of every message the upstream accepted"""
    out = []
    for m in upstream.messages:
        found = re.search(rb"^Subject: (.*)\r$", m.content, re.M)
        out.append(found.group(1).decode() if found else None)
    return sorted(out)


def ctl(proxy, *args, config_path=None):
    """ctl - run smtpproxyctl -c <the proxy's config> args; CompletedProcess"""
    path = config_path or proxy.config_path
    return subprocess.run([CTL, "-c", str(path), *args], stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=CTL_TIMEOUT)


def log_has(proxy, pattern, start=0):
    """log_has - the first match of pattern in the daemon's log, or None"""
    return re.search(pattern, proxy.log_text(start), re.M)


def wait_log(proxy, pattern, timeout=5.0, start=0):
    """wait_log - until pattern appears in the daemon's log; the match"""
    return wait_until(lambda: log_has(proxy, pattern, start), timeout,
        f"log line matching {pattern!r}")


def log_size(proxy):
    try:
        return proxy.log_path.stat().st_size
    except FileNotFoundError:
        return 0


def wait_deferred(proxy, queue_id, timeout=5.0):
    wait_log(proxy, re.escape(queue_id) + r": deferred \(attempt 1,", timeout)


def relay_pid(proxy, start=0):
    """relay_pid - the pid of the relay that started last (from its log line)"""
    found = RELAY_STARTED_RE.findall(proxy.log_text(start))
    return int(found[-1]) if found else None


def proc_ids(pid):
    """proc_ids - ({"Uid": [...], "Gid": [...], "Groups": [...]}) of a process"""
    ids = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            ids[key] = [int(v) for v in value.split()]
    return ids


def proc_state(pid):
    """proc_state - (state, pgrp) of a process, or None when it is gone"""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[2])


def alive(pid):
    """alive - a process of that pid exists and is not a zombie"""
    st = proc_state(pid)
    return st is not None and st[0] != "Z"


def group_members(pgid):
    """group_members - living pids of a process group (from /proc)"""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        st = proc_state(entry.name)
        if st is not None and st[1] == pgid and st[0] != "Z":
            pids.append(int(entry.name))
    return pids


class DetachedDaemon:
    """smtpproxyd without -f: it detaches, so it is found by its pidfile.

    Stopping sends SIGTERM to the pid in the pidfile; cleanup kills the
    process group the daemon made for itself (never ours).
    """

    def __init__(self, config_path, port, pidfile):
        self.config_path = Path(config_path)
        self.port = port
        self.pidfile = Path(pidfile)
        self.pid = None
        self.pgid = None

    def launch(self):
        """launch - run smtpproxyd -c FILE; (CompletedProcess, seconds taken)"""
        began = time.monotonic()
        result = subprocess.run([helpers.DAEMON, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=helpers.START_TIMEOUT)
        return result, time.monotonic() - began

    def pid_from_file(self):
        """pid_from_file - the living pid the pidfile names, or None"""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if alive(pid) else None

    def wait_ready(self):
        """wait_ready - until the pidfile names a live master that greets 220"""
        self.pid = wait_until(self.pid_from_file, helpers.START_TIMEOUT,
            f"a live pid in {self.pidfile}")
        self.pgid = proc_state(self.pid)[1]

        def greets():
            try:
                return helpers.read_greeting(self.port).startswith(b"220")
            except OSError:
                return False
        wait_until(greets, helpers.START_TIMEOUT, f"a 220 greeting on port {self.port}")
        return self.pid

    def stop(self):
        """stop - SIGTERM the master; until it and its children are gone"""
        os.kill(self.pid, signal.SIGTERM)
        wait_until(lambda: not alive(self.pid), helpers.STOP_TIMEOUT,
            f"smtpproxyd (pid {self.pid}) to exit after SIGTERM")
        wait_until(lambda: not group_members(self.pgid), 5.0,
            f"the children of smtpproxyd (pid {self.pid}) to exit")

    def cleanup(self):
        """cleanup - kill whatever is left of the daemon's process group"""
        if self.pgid is None:
            pid = self.pid_from_file()
            if pid is None:
                return
            self.pgid = proc_state(pid)[1]
        if self.pgid in (os.getpgrp(), 0, 1) or not group_members(self.pgid):
            return
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def detached(make_proxy):
    """detached(config=, logging=, accounts=) -> (DetachedDaemon, helpers.Daemon)

    The helpers.Daemon holds the settings (not started with -f); its
    log_path is pointed at [logging] file so a failing test shows it.
    """
    started = []

    def make(config=None, logging=None, accounts=None, log_path=None):
        proxy = make_proxy(config=config, logging=logging, accounts=accounts,
            start=False)
        settings = proxy.settings
        if log_path is not None:
            proxy.log_path = Path(log_path)
        settings.logging["file"] = str(proxy.log_path)
        settings.config.setdefault("pidfile", str(proxy.config_path.parent / "smtpproxyd.pid"))
        settings.write(proxy.config_path)
        daemon = DetachedDaemon(proxy.config_path, proxy.port, settings.config["pidfile"])
        started.append(daemon)
        return daemon, proxy

    yield make
    for daemon in started:
        daemon.cleanup()


@pytest.fixture
def run_as_user():
    """run_as_user - (pwd entry, group entry) of a system user; root only

    Creates the user when it is missing and removes it again afterwards.
    The group is nogroup, not the user's own, so that group= is seen to
    win over the user's primary group.
    """
    if os.geteuid() != 0:
        pytest.skip("privilege drop needs root: run the tests as root to "
            "check that children run as user=/group=")
    created = False
    try:
        pwd.getpwnam(RUN_AS)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
            "/usr/sbin/nologin", RUN_AS], check=True, capture_output=True, timeout=30)
        created = True
    try:
        group = grp.getgrnam("nogroup")
    except KeyError:
        group = grp.getgrgid(pwd.getpwnam(RUN_AS).pw_gid)
    try:
        yield pwd.getpwnam(RUN_AS), group
    finally:
        if created:
            subprocess.run(["userdel", RUN_AS], capture_output=True, timeout=30)


@pytest.fixture
def open_dir():
    """open_dir - a folder under /tmp that every user may traverse

    pytest's tmp_path lives under a 0700 folder of root, which a daemon
    running as another user could not reach.
    """
    path = Path(tempfile.mkdtemp(prefix="smtpproxy-ops-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def second_upstream():
    server = helpers.Upstream()
    server.start()
    yield server
    server.stop()


def point_default_at(proxy, upstream, **extra):
    """point_default_at - rewrite the config: [default] relays to upstream

    Returns the text written.
    """
    settings = proxy.settings
    settings.accounts["default"] = dict(settings.accounts["default"],
        smtpport=upstream.port, **extra)
    settings.write(proxy.config_path)
    return proxy.config_path.read_text()


# ---------------------------------------------------------------- signals

def test_hup_moves_the_next_message_to_the_new_upstream_while_an_open_session_completes(
        make_proxy, upstream, second_upstream):
    proxy = make_proxy(config={"sleeptime": 1, "retrymin": 1, "retrymax": 1})
    open_msg, next_msg = message("open during reload"), message("after reload")
    with RawSMTP(proxy.port) as c:
        assert c.cmd("EHLO client.test")[0] == 250
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert c.cmd(f"RCPT TO:<{RCPT}>")[0] == 250

        mark = log_size(proxy)
        point_default_at(proxy, second_upstream)
        os.kill(proxy.pid, signal.SIGHUP)
        wait_log(proxy, r"INFO: configuration reloaded from ", start=mark)

        assert c.cmd("DATA")[0] == 354
        c.send(open_msg + b".\r\n")
        code, text = c.reply()
        open_id = queue_id_of(code, text[0])
        assert c.cmd("QUIT")[0] == 221

    next_id = send_message(proxy.port, SENDER, [RCPT], next_msg)
    assert next_id != open_id
    wait_until(lambda: "after reload" in subjects(second_upstream), 5.0,
        "the message sent after the reload at the new upstream")
    wait_until(lambda: len(upstream.messages) + len(second_upstream.messages) >= 2,
        5.0, "both messages at one upstream or the other")
    time.sleep(1.5)     # a second delivery would show up by now (sleeptime 1)
    # The message of the open session was accepted under the old config,
    # but the relay resolves the sender's account when it delivers, and
    # the relay was replaced by the reload: so it normally goes to the new
    # upstream too.  What the reload promises is only that the session
    # completes; either upstream is right, but exactly once.
    assert sorted(subjects(upstream) + subjects(second_upstream)) == \
        ["after reload", "open during reload"]
    assert "after reload" in subjects(second_upstream)


def test_broken_config_on_hup_is_refused_and_the_old_one_keeps_working(
        make_proxy, upstream, second_upstream):
    proxy = make_proxy(config={"sleeptime": 1})
    children = sorted(wait_until(proxy.children, 2.0, "children of the master"))
    mark = log_size(proxy)
    # Valid in everything but one line, and pointing at another upstream:
    # if any of it were taken, mail would go there.
    text = point_default_at(proxy, second_upstream, smtpsecurity="TLS")
    line = 1 + text.splitlines().index("smtpsecurity=TLS")
    os.kill(proxy.pid, signal.SIGHUP)

    found = wait_log(proxy, r"^.*reload refused.*$", start=mark)
    assert f"{proxy.config_path}:{line}: " in found.group(0), found.group(0)
    assert helpers.read_greeting(proxy.port).startswith(b"220 proxy.test")
    send_message(proxy.port, SENDER, [RCPT], message("after refused reload"))
    upstream.wait_for_messages(1)
    assert subjects(upstream) == ["after refused reload"]
    assert not second_upstream.attempts
    # The children of the running config stay (the pool may have grown
    # meanwhile: that is load, not a reload).
    assert set(children) <= set(proxy.children())
    assert not log_has(proxy, r"configuration reloaded", start=mark)


def test_term_during_data_lets_the_message_finish_and_it_is_delivered_after_restart(
        make_proxy, upstream):
    proxy = make_proxy(config={"sleeptime": 1})
    sent = message("half sent at term", b"first half\r\n" * 20 + b"second half\r\n" * 20)
    half = len(sent) // 2
    master = proxy.pid
    with RawSMTP(proxy.port) as c:
        assert c.cmd("EHLO client.test")[0] == 250
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert c.cmd(f"RCPT TO:<{RCPT}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(sent[:half])

        os.kill(master, signal.SIGTERM)
        # The relay stops at once: whatever is accepted now waits for a restart.
        wait_log(proxy, r"smtpproxyd/relay\[\d+\]: INFO: relay stopped")
        time.sleep(0.3)
        assert proxy.proc.poll() is None, "the master exited with a session open"

        c.send(sent[half:] + b".\r\n")
        code, text = c.reply()
        queue_id = queue_id_of(code, text[0])
        try:
            c.cmd("QUIT")
        except (AssertionError, OSError):
            pass        # closing right after the last reply is fine
    wait_until(lambda: proxy.proc.poll() is not None, helpers.STOP_TIMEOUT,
        "the master to exit once the session ended")
    assert proxy.stop() == 0
    assert not upstream.messages
    assert proxy.find_queued(queue_id), f"{queue_id} not in the spool: {proxy.queued()}"

    proxy.start()
    [got] = upstream.wait_for_messages(1)
    assert got.content.endswith(sent)
    wait_until(lambda: not proxy.queued(), 5.0, "an empty queue")


def test_term_accepts_no_new_session_while_an_open_one_finishes(make_proxy, upstream):
    proxy = make_proxy(config={"sleeptime": 1})
    with RawSMTP(proxy.port) as open_session:
        assert open_session.cmd("EHLO client.test")[0] == 250
        assert open_session.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert open_session.cmd(f"RCPT TO:<{RCPT}>")[0] == 250
        assert open_session.cmd("DATA")[0] == 354
        open_session.send(message("open at term")[:40])
        busy = [p for p in proxy.children() if p != relay_pid(proxy)]

        os.kill(proxy.pid, signal.SIGTERM)
        # Only the listener with the open session is left holding the socket.
        wait_until(lambda: len(proxy.children()) == 1, 5.0,
            f"the idle children to exit (children: {proxy.children()})")
        assert proxy.children()[0] in busy
        late = socket.create_connection((LOCALHOST, proxy.port), timeout=5.0)
        try:
            open_session.send(message("open at term")[40:] + b".\r\n")
            code, text = open_session.reply()
            queue_id_of(code, text[0])
            open_session.send(b"QUIT\r\n")

            # The connection made after SIGTERM must not get a session:
            # it is closed (EOF or reset) once the last listener exits.
            try:
                greeting = late.makefile("rb").readline(4096)
            except OSError:
                greeting = b""
            assert not greeting.startswith(b"220"), \
                f"a connection made after SIGTERM was served: {greeting!r}"
        finally:
            late.close()
    wait_until(lambda: proxy.proc.poll() is not None, helpers.STOP_TIMEOUT,
        "the master to exit once the open session ended")
    assert proxy.stop() == 0


def test_killed_listener_and_relay_are_replaced_and_no_message_is_lost(make_proxy, upstream):
    proxy = make_proxy(config={"sleeptime": 1, "retrymin": 1, "retrymax": 1})
    old_relay = wait_until(lambda: relay_pid(proxy), 5.0, "the relay's start line")
    expected = []

    def send(subject):
        send_message(proxy.port, SENDER, [RCPT], message(subject))
        expected.append(subject)

    send("before kills")
    upstream.wait_for_messages(1)

    listeners = [p for p in proxy.children() if p != old_relay]
    assert listeners, f"no listener among {proxy.children()}"
    victim = listeners[0]
    os.kill(victim, signal.SIGKILL)
    send("after listener kill")
    wait_until(lambda: victim not in proxy.children()
        and len([p for p in proxy.children() if p != relay_pid(proxy)]) >= len(listeners),
        5.0, f"a replacement for listener {victim} (children: {proxy.children()})")

    mark = log_size(proxy)
    os.kill(old_relay, signal.SIGKILL)
    send("while the relay is down")
    new_relay = wait_until(lambda: relay_pid(proxy, mark), 5.0, "a new relay")
    assert new_relay != old_relay
    assert new_relay in proxy.children()
    assert old_relay not in proxy.children()
    send("after relay kill")

    upstream.wait_for_messages(len(expected), timeout=8.0)
    time.sleep(1.5)     # duplicates would show up by now (sleeptime 1)
    assert subjects(upstream) == sorted(expected)
    wait_until(lambda: not proxy.queued(), 5.0, "an empty queue")
    assert not proxy.spool_names("failed")


# ---------------------------------------------------------------- privileges

def test_children_run_as_user_and_group_and_the_spool_is_theirs(
        run_as_user, open_dir, make_proxy, upstream):
    user, group = run_as_user
    msgdir = open_dir / "msgs"
    proxy = make_proxy(config={"user": user.pw_name, "group": group.gr_name,
        "msgdir": str(msgdir), "sleeptime": 1, "retrymin": 1, "retrymax": 1},
        start=False)
    msgdir.rmdir()      # the daemon makes it, as it would on a fresh install
    proxy.start()
    upstream.data_reply = "451 4.3.0 keep it queued for a moment"

    master = proc_ids(proxy.pid)
    assert master["Uid"] == [0, 0, 0, 0], master
    children = wait_until(lambda: len(proxy.children()) >= 3 and proxy.children(),
        5.0, "two listeners and the relay")

    def dropped(pid):
        """a child is root only between its fork and its priv_drop()"""
        try:
            ids = proc_ids(pid)
        except (FileNotFoundError, ProcessLookupError):
            return {"gone": True}
        return ids if ids["Uid"] != [0, 0, 0, 0] else None
    for pid in children:
        ids = wait_until(lambda: dropped(pid), 2.0, f"child {pid} to leave root")
        if "gone" in ids:
            continue
        assert ids["Uid"] == [user.pw_uid] * 4, (pid, ids)
        assert ids["Gid"] == [group.gr_gid] * 4, (pid, ids)
        assert ids["Groups"] == [group.gr_gid], (pid, ids)

    queue_id = send_message(proxy.port, SENDER, [RCPT], message("as the run-as user"))
    upstream.wait_for_attempts(1)
    def queued_stat():
        # the relay may rename the file (retry state) while we look
        path = proxy.find_queued(queue_id)
        try:
            return (path, path.stat()) if path else None
        except FileNotFoundError:
            return None

    path, st_file = wait_until(queued_stat, 5.0, f"{queue_id} in the queue")
    for folder in (msgdir, msgdir / "tmp", msgdir / "new", msgdir / "cur", msgdir / "failed"):
        st = folder.stat()
        assert (st.st_uid, st.st_gid) == (user.pw_uid, group.gr_gid), folder
        assert stat.S_IMODE(st.st_mode) == 0o700, (folder, oct(st.st_mode))
    trigger = (msgdir / "trigger").stat()
    assert stat.S_ISFIFO(trigger.st_mode)
    assert trigger.st_uid == user.pw_uid and stat.S_IMODE(trigger.st_mode) == 0o600
    assert st_file.st_uid == user.pw_uid, path
    assert stat.S_IMODE(st_file.st_mode) == 0o600, (path, oct(st_file.st_mode))

    upstream.data_reply = None
    upstream.wait_for_messages(1, timeout=8.0)


# ---------------------------------------------------------------- logging

LOAD_THREADS = 8
LOAD_MESSAGES = 25
LOAD_LOG_SIZE = 6000        # small: the load rotates the log many times
LOAD_LOG_COUNT = 50
LOAD_LOG_SLACK = 2000       # lines that writers had begun when it filled up


def send_load(port):
    """send_load - LOAD_THREADS clients × LOAD_MESSAGES each; the queue IDs"""
    ids, errors = [], []
    lock = threading.Lock()

    def client(n):
        try:
            with smtp_client(port) as c:
                for k in range(LOAD_MESSAGES):
                    qid = queue_id_of(*submit(c, SENDER, [RCPT], message(f"load {n}-{k}")))
                    with lock:
                        ids.append(qid)
                c.quit()
        except Exception as e:      # reported below, in the test's thread
            with lock:
                errors.append(f"client {n}: {e!r}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(LOAD_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert not errors, errors
    return ids


def test_log_rotation_under_concurrent_load_keeps_every_line(
        request, open_dir, detached, upstream):
    log_dir = open_dir / "log"
    log_dir.mkdir()
    logfile = log_dir / "smtpproxyd.log"
    config = {"msgdir": str(open_dir / "msgs"), "processes": 4, "maxprocesses": 16}
    user = None
    if os.geteuid() == 0:
        user, group = request.getfixturevalue("run_as_user")
        config.update(user=user.pw_name, group=group.gr_name)
        os.chown(log_dir, user.pw_uid, group.gr_gid)
    daemon, proxy = detached(config=config, log_path=logfile,
        logging={"size": LOAD_LOG_SIZE, "count": LOAD_LOG_COUNT, "level": "INFO"})
    result, _ = daemon.launch()
    assert result.returncode == 0, (result.stdout, result.stderr, proxy.log_text())
    daemon.wait_ready()

    ids = send_load(proxy.port)
    assert len(set(ids)) == LOAD_THREADS * LOAD_MESSAGES
    upstream.wait_for_messages(len(ids), timeout=30.0)

    def files():
        rotated = sorted((p for p in log_dir.glob(logfile.name + ".*")
            if p.suffix[1:].isdigit()), key=lambda p: int(p.suffix[1:]))
        return [logfile] + rotated

    def all_lines():
        out = []
        for p in files():
            data = p.read_bytes()
            assert not data or data.endswith(b"\n"), f"{p} ends inside a line"
            out.extend(data.decode("utf-8", "replace").splitlines())
        return out

    def delivered_everything():
        text = "\n".join(all_lines())
        return all(f"{qid}: from=<" in text for qid in ids)
    wait_until(delivered_everything, 10.0, "a delivery line for every queue ID")
    daemon.stop()

    names = files()
    assert len(names) >= 5, f"the log was rotated only {len(names) - 1} time(s)"
    assert len(names) <= LOAD_LOG_COUNT, "rotation dropped files: the test wrote too much"
    # A process still holding a rotated file must follow the new one
    # before it writes, not append to the old file.
    big = [(p.name, p.stat().st_size) for p in names
        if p.stat().st_size > LOAD_LOG_SIZE + LOAD_LOG_SLACK]
    assert not big, f"log files far over size={LOAD_LOG_SIZE}: {big}"
    lines = all_lines()
    bad = [l for l in lines if not LOG_LINE_RE.match(l)]
    assert not bad, f"{len(bad)} malformed line(s), e.g. {bad[:3]}"
    for qid in ids:
        accepted = [l for l in lines if f": {qid}: accepted from=<{SENDER}>" in l]
        delivered = [l for l in lines if f": {qid}: from=<{SENDER}>" in l and "status=sent" in l]
        assert len(accepted) == 1, (qid, accepted)
        assert len(delivered) == 1, (qid, delivered)
    if user is not None:
        for p in names:
            assert p.stat().st_uid == user.pw_uid, f"{p} belongs to uid {p.stat().st_uid}"


# ---------------------------------------------------------------- daemon life

def test_without_f_it_detaches_writes_the_pidfile_and_removes_it_on_term(
        detached, upstream, tmp_path):
    daemon, proxy = detached(config={"pidfile": str(tmp_path / "run" / "smtpproxyd.pid")})
    daemon.pidfile.parent.mkdir()
    result, took = daemon.launch()
    assert result.returncode == 0, (result.stdout, result.stderr, proxy.log_text())
    assert took < 3.0, f"the command took {took:.1f} s to return"

    pid = daemon.wait_ready()
    started = wait_log(proxy, r"smtpproxyd\[(\d+)\]: INFO: started: ")
    assert int(started.group(1)) == pid, "the pidfile does not name the master"
    assert wait_until(lambda: os.path.exists(f"/proc/{pid}/task/{pid}/children")
        and Path(f"/proc/{pid}/task/{pid}/children").read_text().split(), 5.0,
        "children of the master")

    send_message(proxy.port, SENDER, [RCPT], message("detached"))
    upstream.wait_for_messages(1)

    daemon.stop()
    assert not daemon.pidfile.exists(), "the pidfile outlived the daemon"


# ---------------------------------------------------------------- smtpproxyctl

def test_ctl_status_shows_a_running_daemon_its_pids_and_counters(proxy, upstream):
    for n in range(3):
        send_message(proxy.port, SENDER, [RCPT], message(f"counted {n}"))
    upstream.wait_for_messages(3)
    relay = wait_until(lambda: relay_pid(proxy), 5.0, "the relay's start line")

    def status_when_delivered():
        result = ctl(proxy, "status")
        return result if "delivered=3" in result.stdout else None
    result = wait_until(status_when_delivered, 5.0, "status to count 3 deliveries")
    assert result.returncode == 0, result
    out = result.stdout
    assert re.search(rf"daemon: running, master pid {proxy.pid}, relay pid {relay}\b", out), out
    assert re.search(r"\baccepted=3\b", out), out
    assert re.search(r"\bdeferred=0\b", out) and re.search(r"\bfailed=0\b", out), out
    assert re.search(r"listeners: \d+ \(", out), out
    assert re.search(r"queue: 0 new, 0 in cur", out), out


def test_ctl_queue_lists_a_deferred_message_with_attempts_and_next_try(make_proxy, upstream):
    upstream.stop()
    proxy = make_proxy(config={"retrymin": 600, "retrymax": 3600})
    queue_id = send_message(proxy.port, SENDER, [RCPT], message("deferred"))
    wait_deferred(proxy, queue_id)

    result = ctl(proxy, "queue")
    assert result.returncode == 0, result
    [line] = [l for l in result.stdout.splitlines() if l.startswith(queue_id)]
    assert f"from=<{SENDER}>" in line and f"to=<{RCPT}>" in line, line
    assert re.search(r"\battempts=1\b", line), line
    next_try = re.search(r"\bnext=(\d+)s\b", line)
    assert next_try and 500 < int(next_try.group(1)) <= 600, line
    assert result.stdout.splitlines()[-1] == "1 message", result.stdout


def test_ctl_queue_shows_the_last_error_of_a_deferred_message(make_proxy, upstream):
    upstream.data_reply = "451 4.3.0 upstream-says-try-later"
    proxy = make_proxy(config={"retrymin": 600, "retrymax": 3600})
    queue_id = send_message(proxy.port, SENDER, [RCPT], message("last error"))
    wait_deferred(proxy, queue_id)

    result = ctl(proxy, "queue")
    assert result.returncode == 0, result
    [line] = [l for l in result.stdout.splitlines() if l.startswith(queue_id)]
    assert "upstream-says-try-later" in line, \
        f"queue does not show the last error of a deferred message: {line!r}"


def test_ctl_flush_makes_a_deferred_message_due_at_once(make_proxy, upstream):
    upstream.stop()
    proxy = make_proxy(config={"retrymin": 600, "retrymax": 3600})
    queue_id = send_message(proxy.port, SENDER, [RCPT], message("flushed"))
    wait_deferred(proxy, queue_id)
    upstream.start()
    time.sleep(1.0)
    assert not upstream.attempts, "delivered before its next try without a flush"

    result = ctl(proxy, "flush")
    assert result.returncode == 0, result
    assert queue_id in result.stdout, result.stdout
    upstream.wait_for_messages(1, timeout=5.0)
    wait_until(lambda: not proxy.queued(), 5.0, "an empty queue")


def fail_one(proxy, upstream, subject):
    """fail_one - send a message the upstream refuses with 550; its queue ID"""
    upstream.data_reply = "550 5.7.1 refused-by-the-test"
    queue_id = send_message(proxy.port, SENDER, [RCPT], message(subject))
    wait_until(lambda: queue_id in proxy.spool_names("failed"), 5.0,
        f"{queue_id} in failed/ (failed/: {proxy.spool_names('failed')})")
    return queue_id


def test_ctl_queue_failed_shows_the_reason(proxy, upstream):
    queue_id = fail_one(proxy, upstream, "refused")
    result = ctl(proxy, "queue", "--failed")
    assert result.returncode == 0, result
    [line] = [l for l in result.stdout.splitlines() if l.startswith(queue_id)]
    assert "550" in line and "refused-by-the-test" in line, line
    assert "0 messages" in ctl(proxy, "queue").stdout


def test_ctl_retry_puts_a_failed_message_back_and_it_is_delivered(proxy, upstream):
    queue_id = fail_one(proxy, upstream, "retried")
    upstream.data_reply = None

    result = ctl(proxy, "retry", queue_id)
    assert result.returncode == 0, result
    [got] = upstream.wait_for_messages(1, timeout=5.0)
    assert b"Subject: retried\r\n" in got.content
    wait_until(lambda: not proxy.queued() and not proxy.spool_names("failed"),
        5.0, f"queue and failed/ empty (failed/: {proxy.spool_names('failed')})")


def test_ctl_delete_removes_a_queued_message(make_proxy, upstream):
    upstream.stop()
    proxy = make_proxy(config={"retrymin": 600, "retrymax": 3600})
    queue_id = send_message(proxy.port, SENDER, [RCPT], message("deleted"))
    wait_deferred(proxy, queue_id)

    result = ctl(proxy, "delete", queue_id)
    assert result.returncode == 0, result
    assert proxy.find_queued(queue_id) is None, proxy.queued()
    assert ctl(proxy, "queue").stdout.splitlines()[-1] == "0 messages"
    again = ctl(proxy, "delete", queue_id)
    assert again.returncode == 1 and "no such message" in again.stderr, again

    upstream.start()
    assert ctl(proxy, "flush").returncode == 0
    time.sleep(0.5)
    assert not upstream.attempts


def test_ctl_status_of_a_stopped_daemon_says_not_running_and_exits_1(proxy):
    assert ctl(proxy, "status").returncode == 0
    assert proxy.stop() == 0
    result = ctl(proxy, "status")
    assert result.returncode == 1, result
    assert "not running" in result.stdout + result.stderr, result


def test_ctl_check_names_file_and_line_of_a_bad_config_and_exits_1(proxy):
    good = ctl(proxy, "check")
    assert good.returncode == 0 and "config OK" in good.stdout, good
    bad = proxy.config_path.with_name("bad.ini")
    text = proxy.config_path.read_text().replace("[logging]\n", "[logging]\nlevel=LOUD\n", 1)
    bad.write_text(text)
    line = 1 + text.splitlines().index("level=LOUD")
    result = ctl(proxy, "check", config_path=bad)
    assert result.returncode == 1, result
    assert f"{bad}:{line}: " in result.stdout + result.stderr, result
