"""Harness of the integration tests: the real smtpproxyd, a real upstream.

What lives here:
  free_port()          a TCP port on 127.0.0.1 nobody listens on right now
  wait_until()         poll a condition every 20 ms, fail clearly after N s
  Upstream             an aiosmtpd server that records every message byte
                       for byte, can refuse recipients or DATA on request,
                       and can be stopped and started again on its port
  ProxyConfig          the daemon's settings, written as INI or libconfig
  Daemon               one smtpproxyd -f process: start, wait for its 220,
                       stop (SIGTERM, then SIGKILL of its process group),
                       restart with the same config and spool
  send_message()       submit with smtplib, return the queue ID of the 250
  RawSMTP              a byte-level client for what smtplib would normalise
  split_header()       a message's header fields and the rest, as bytes

Everything talks to 127.0.0.1 only and every wait is bounded.
"""

import errno
import os
import re
import signal
import smtplib
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller

REPO_ROOT = Path(__file__).resolve().parents[2]
DAEMON = os.environ.get("SMTPPROXYD") or str(REPO_ROOT / "smtpproxyd" / "smtpproxyd")
LOCALHOST = "127.0.0.1"

POLL_INTERVAL = 0.02        # seconds between two looks at a condition
START_TIMEOUT = 10.0        # daemon: from exec to its 220 greeting
STOP_TIMEOUT = 10.0     # daemon: from SIGTERM to its exit
CLIENT_TIMEOUT = 10.0       # any single socket operation of a client

QUEUED_RE = re.compile(r"^2\.0\.0 Ok: queued as (\S+)$")
FREE_PREFIX = "free."      # tmp/free.<ID>: a delivered file kept for reuse
PORT_TRIES = 3          # a port found free can be taken before we bind it


# ---------------------------------------------------------------- basics

def free_port():
    """free_port - a TCP port on 127.0.0.1 that was free a moment ago"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def wait_until(condition, timeout, what):
    """wait_until - poll condition() until it returns a true value

    Returns that value.  After timeout seconds it fails with a message
    naming what was awaited, so a hang never outlives a test.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL_INTERVAL)


# ---------------------------------------------------------------- upstream

@dataclass
class Received:
    """One DATA transaction as the upstream saw it."""
    mail_from: str
    rcpt_tos: list
    content: bytes          # exactly the bytes after dot-unstuffing
    ehlo: str           # the name the client gave in EHLO/HELO
    mail_options: list = field(default_factory=list)
    peer: tuple = None
    reply: str = ""         # what the upstream answered to DATA


class _RecordingHandler:
    """aiosmtpd hooks: answer as the Upstream says, record everything."""

    def __init__(self, upstream):
        self.upstream = upstream

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.upstream.rcpt_replies.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        reply = self.upstream.data_reply or "250 2.0.0 Ok: delivered"
        record = Received(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            content=bytes(envelope.original_content),
            ehlo=session.host_name,
            mail_options=list(envelope.mail_options),
            peer=session.peer,
            reply=reply,
        )
        self.upstream._record(record)
        return reply


class Upstream:
    """A real SMTP server on 127.0.0.1 that records what reaches it.

      messages       transactions answered with 250 (what was delivered)
      attempts       every transaction that reached the end of DATA
      rcpt_replies   {address: "550 5.1.1 ..."} answers RCPT for that address
      data_reply     "451 4.3.0 ..." answers DATA with it (None: 250)
      stop()/start() close and reopen the same port (upstream down and up)
    """

    def __init__(self, port=None, hostname="upstream.test"):
        self.port = port or free_port()
        self._port_chosen = port is None
        self.hostname = hostname
        self.rcpt_replies = {}
        self.data_reply = None
        self._lock = threading.Lock()
        self._messages = []
        self._attempts = []
        self._controller = None

    def start(self):
        """start - listen on self.port (again)

        The first start of a port chosen here moves to another free port
        if someone took this one in the meantime; a restart never moves.
        """
        assert self._controller is None, "upstream already running"
        for _ in range(PORT_TRIES):
            try:
                self._start_once()
                break
            except OSError as e:
                if e.errno != errno.EADDRINUSE or not self._port_chosen:
                    raise
                self.port = free_port()
        else:
            raise AssertionError(f"upstream: no free port after {PORT_TRIES} tries")
        self._port_chosen = False

    def _start_once(self):
        controller = Controller(
            _RecordingHandler(self),
            hostname=LOCALHOST,
            port=self.port,
            server_hostname=self.hostname,
            decode_data=False,
            ready_timeout=5.0,
        )
        controller.start()
        self._controller = controller

    def stop(self):
        """stop - close the port; later connections are refused"""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self):
        return self._controller is not None

    def _record(self, record):
        with self._lock:
            self._attempts.append(record)
            if record.reply.startswith("2"):
                self._messages.append(record)

    @property
    def messages(self):
        with self._lock:
            return list(self._messages)

    @property
    def attempts(self):
        with self._lock:
            return list(self._attempts)

    def wait_for_records(self, records, count, timeout, what):
        """wait_for_records - the first count items of the property named
        records (messages, attempts, ...), waiting at most timeout"""
        def enough():
            got = getattr(self, records)
            return got if len(got) >= count else None
        return wait_until(enough, timeout,
            f"{count} {what} at the upstream on port {self.port}"
            f" (got {len(getattr(self, records))})")

    def wait_for_messages(self, count=1, timeout=5.0):
        """wait_for_messages - the first count delivered messages"""
        return self.wait_for_records("messages", count, timeout, "message(s)")

    def wait_for_attempts(self, count=1, timeout=5.0):
        """wait_for_attempts - the first count DATA transactions, any reply"""
        return self.wait_for_records("attempts", count, timeout,
            "DATA attempt(s)")


# ---------------------------------------------------------------- config

def _ini_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _cfg_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[ " + ", ".join(_cfg_value(v) for v in value) + " ]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


class ProxyConfig:
    """The settings of one daemon: [config], [logging] and the accounts.

    Python values: int, bool, str (or a list for multi-valued keys).
    A key set to None is left out of the file.
    """

    def __init__(self, config=None, logging=None, accounts=None):
        self.config = dict(config or {})
        self.logging = dict(logging or {})
        self.accounts = dict(accounts or {})    # name -> {key: value}

    @staticmethod
    def _items(section):
        return [(k, v) for k, v in section.items() if v is not None]

    def render_ini(self):
        """render_ini - the settings in smtpproxy.ini syntax"""
        out = []
        for name, section in (("config", self.config), ("logging", self.logging)):
            out.append(f"[{name}]")
            out.extend(f"{k}={_ini_value(v)}" for k, v in self._items(section))
            out.append("")
        for name, section in self.accounts.items():
            out.append(f"[{name}]")
            out.extend(f"{k}={_ini_value(v)}" for k, v in self._items(section))
            out.append("")
        return "\n".join(out)

    def render_libconfig(self):
        """render_libconfig - the same settings in libconfig syntax"""
        out = []
        for name, section in (("config", self.config), ("logging", self.logging)):
            out.append(f"{name} = {{")
            out.extend(f"  {k} = {_cfg_value(v)};" for k, v in self._items(section))
            out.append("};")
        groups = []
        for name, section in self.accounts.items():
            lines = [f"    address = {_cfg_value(name)};"]
            lines.extend(f"    {k} = {_cfg_value(v)};" for k, v in self._items(section))
            groups.append("  {\n" + "\n".join(lines) + "\n  }")
        out.append("accounts = (")
        out.append(",\n".join(groups))
        out.append(");")
        return "\n".join(out) + "\n"

    def write(self, path, syntax="ini"):
        """write - the file the daemon reads; syntax is "ini" or "libconfig" """
        text = self.render_ini() if syntax == "ini" else self.render_libconfig()
        Path(path).write_text(text)
        return Path(path)


# ---------------------------------------------------------------- daemon

def run_daemon(*args, timeout=10.0):
    """run_daemon - run smtpproxyd to completion (for -t, -V, bad options)"""
    return subprocess.run([DAEMON, *args], stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout)


def read_greeting(port, timeout=1.0):
    """read_greeting - connect, read the first reply line, say QUIT"""
    with socket.create_connection((LOCALHOST, port), timeout=timeout) as s:
        reader = s.makefile("rb")
        line = reader.readline(4096)
        try:
            s.sendall(b"QUIT\r\n")
            reader.readline(4096)
        except OSError:
            pass
        return line


class PortTaken(AssertionError):
    """The daemon could not bind its port: someone else has it."""


class Daemon:
    """One smtpproxyd -f process with its config, spool and log file."""

    def __init__(self, config_path, port, msgdir, log_path):
        self.config_path = Path(config_path)
        self.port = port
        self.msgdir = Path(msgdir)
        self.log_path = Path(log_path)
        self.proc = None
        self.returncodes = []
        self._log_start = 0

    # -- life cycle

    def start(self, wait=True):
        """start - exec the daemon; with wait, until it greets with 220"""
        assert self.proc is None, "daemon already running"
        log = open(self.log_path, "ab")
        self._log_start = log.tell()
        try:
            # Its own session and process group, so that a daemon that
            # ignores SIGTERM can be killed together with its children
            # without touching any other process.
            self.proc = subprocess.Popen(
                [DAEMON, "-f", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)
        finally:
            log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=START_TIMEOUT):
        """wait_ready - until the port answers with a 220 greeting"""
        deadline = time.monotonic() + timeout
        last = "no connection yet"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self._reap(rc)
                if rc == 3 and "Address already in use" in self.log_text(self._log_start):
                    raise PortTaken(f"port {self.port} is taken:\n{self.log_text()}")
                raise AssertionError(
                    f"smtpproxyd exited with status {rc} before greeting;"
                    f" its log:\n{self.log_text()}")
            try:
                line = read_greeting(self.port)
                if line.startswith(b"220"):
                    return line
                last = f"greeting {line!r}"
            except OSError as e:
                last = str(e)
            time.sleep(POLL_INTERVAL)
        raise AssertionError(
            f"smtpproxyd did not greet with 220 on port {self.port} within"
            f" {timeout:g} s (last: {last}); its log:\n{self.log_text()}")

    def stop(self, timeout=STOP_TIMEOUT):
        """stop - SIGTERM, wait; SIGKILL its process group if it hangs

        Returns the exit status.  A hang, or children left behind after
        the master exited, fail loudly: both are daemon bugs.
        """
        if self.proc is None:
            return None
        proc, pid = self.proc, self.proc.pid
        problem = None
        if proc.poll() is None:
            os.kill(pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                problem = f"smtpproxyd (pid {pid}) still running {timeout:g} s after SIGTERM"
                self._kill_group(pid)
                proc.wait(5)
        if problem is None and not self._group_gone(pid, timeout=5.0):
            problem = f"children of smtpproxyd (pid {pid}) outlived it"
            self._kill_group(pid)
        rc = proc.returncode
        self._reap(rc)
        if problem:
            raise AssertionError(f"{problem}; its log:\n{self.log_text()}")
        return rc

    def restart(self):
        """restart - stop and start again with the same config and spool"""
        self.stop()
        return self.start()

    def _reap(self, rc):
        self.returncodes.append(rc)
        self.proc = None

    @staticmethod
    def _group_gone(pgid, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_INTERVAL)

    @staticmethod
    def _kill_group(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def children(self):
        """children - PIDs of the master's direct children (from /proc)"""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except FileNotFoundError:
            return []

    # -- what it left behind

    def log_text(self, start=0):
        """log_text - what the daemon wrote (from byte start on)"""
        try:
            return self.log_path.read_bytes()[start:].decode("utf-8", "replace")
        except FileNotFoundError:
            return "(no log file)"

    def spool_names(self, folder):
        """spool_names - file names in msgdir/<folder>, sorted; not the
        delivered files tmp/ keeps for reuse (free_names)"""
        d = self.msgdir / folder
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir()
                      if p.is_file() and not p.name.startswith(FREE_PREFIX))

    def free_names(self):
        """free_names - the delivered files kept for reuse: tmp/free.*"""
        d = self.msgdir / "tmp"
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.glob(FREE_PREFIX + "*"))

    def queued(self):
        """queued - (folder, name) of every message in new/ and cur/"""
        return [(f, n) for f in ("new", "cur") for n in self.spool_names(f)]

    def find_queued(self, queue_id):
        """find_queued - path of the spool file of queue_id in new/ or cur/"""
        for folder, name in self.queued():
            if name == queue_id or name.startswith(queue_id + ":"):
                return self.msgdir / folder / name
        return None

    def read_queued(self, queue_id, tries=20):
        """read_queued - the bytes of queue_id's spool file, or None; the
        relay may rename it (new/ -> cur/, retry state) between finding it
        and reading it, so it is looked up again then"""
        for _ in range(tries):
            path = self.find_queued(queue_id)
            if path is None:
                return None
            try:
                return path.read_bytes()
            except FileNotFoundError:
                continue
        return None


# ---------------------------------------------------------------- clients

def smtp_client(port):
    """smtp_client - an smtplib session to the proxy, after EHLO"""
    client = smtplib.SMTP(LOCALHOST, port, local_hostname="client.test",
        timeout=CLIENT_TIMEOUT)
    client.ehlo()
    return client


def submit(client, sender, rcpts, message, mail_options=()):
    """submit - one transaction on an open session; the DATA (code, text)"""
    code, text = client.mail(sender, list(mail_options))
    assert code == 250, f"MAIL FROM:<{sender}> answered {code} {text!r}"
    for rcpt in rcpts:
        code, text = client.rcpt(rcpt)
        assert code == 250, f"RCPT TO:<{rcpt}> answered {code} {text!r}"
    code, text = client.data(message)
    return code, text.decode("utf-8", "replace")


def queue_id_of(code, text):
    """queue_id_of - the ID of a "250 2.0.0 Ok: queued as ID" reply"""
    m = QUEUED_RE.match(text)
    assert code == 250 and m, f"DATA answered {code} {text!r}, not 250 2.0.0 Ok: queued as ID"
    return m.group(1)


def send_message(port, sender, rcpts, message, mail_options=()):
    """send_message - submit one message with smtplib; its queue ID"""
    with smtp_client(port) as client:
        code, text = submit(client, sender, rcpts, message, mail_options)
        client.quit()
    return queue_id_of(code, text)


class RawSMTP:
    """An SMTP client that sends exactly the bytes it is given."""

    def __init__(self, port, timeout=CLIENT_TIMEOUT):
        self.sock = socket.create_connection((LOCALHOST, port), timeout=timeout)
        self.reader = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self):
        """reply - (code, [text lines]) of one possibly multi-line reply"""
        lines = []
        while True:
            line = self.reader.readline(4096)
            if not line:
                raise AssertionError(f"connection closed; got so far {lines!r}")
            line = line.rstrip(b"\r\n").decode("utf-8", "replace")
            lines.append(line[4:])
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), lines

    def send(self, data):
        self.sock.sendall(data)

    def cmd(self, line):
        """cmd - send one command line, return its reply"""
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def close(self):
        try:
            self.reader.close()
        finally:
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------- messages

def split_header(message):
    """split_header - ([header fields], rest) of a message in bytes

    Each field keeps its folded continuation lines and CRLFs; rest starts
    with the empty line that ends the header block.  Joining the fields
    and rest gives the message back unchanged.
    """
    end = message.find(b"\r\n\r\n")
    assert end >= 0, f"no end of header block in {message[:200]!r}"
    head, rest = message[:end + 2], message[end + 2:]
    fields = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields, rest


def field_name(field_bytes):
    """field_name - the lower-case name of a header field"""
    return field_bytes.split(b":", 1)[0].strip().lower()
