#!/usr/bin/python3
"""run.py - smtpproxy against Postfix on this machine, side by side.

Three systems take the same load from Postfix's smtp-source and hand it to
the same smtp-sink on 127.0.0.1:

  smtpproxy   the built smtpproxyd, daemonized, with a spool in a temporary
              folder and a [default] account that relays to the sink
  postfix     a private relay-only Postfix instance: its own config, queue
              and data folders in the same temporary folder (so both fsync
              on the same file system), relayhost = the sink
  direct      smtp-source straight into smtp-sink: the ceiling of the tools

Each system runs in blocks: a fresh sink, a fresh start, a warm-up, then
its measurements.  Before a block the run waits (bounded) for the machine
to be idle, and a block during which other processes took 10% or more of
the CPUs is measured again (bounded); both are reported.

What it measures (see bench/README.md for how and why):

  throughput  per size (1 KiB, 100 KiB) and concurrency (1, 10, 50 sessions,
              one connection per message): durable acceptance rate (until
              smtp-source is done), end-to-end rate and tail (until the
              sink has counted every message), CPU time per message of all
              the system's processes, and their peak PSS under load;
              repeated, median and spread
  latency     idle, one message at a time: client start -> arrival at the
              sink, p50 and p99, and what each proxy adds to the direct path
  scan        the relay pass over a spool holding N messages that are not
              yet due (smtpproxy: cur/ with a future T; Postfix: qmgr's
              scan of the deferred queue): CPU and wall time per pass,
              system calls per pass, and the delay it adds to a new message

Output: a table on stdout and a CSV (long form: one value per row).

    /usr/bin/python3 bench/run.py [--quick] [--csv FILE] [options]

Exit status: 0 all measured (targets are reported, never enforced),
1 a measurement failed, 2 usage or a missing tool.  Only 127.0.0.1 is used;
every loop is bounded in count and time; every process started here is
stopped on the way out, also on SIGINT/SIGTERM.
"""

import argparse
import csv
import datetime
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DAEMON = os.environ.get("SMTPPROXYD") or str(REPO_ROOT / "smtpproxyd" / "smtpproxyd")
SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
POSTFIX = "/usr/sbin/postfix"
LOCALHOST = "127.0.0.1"

SENDER = "bench@bench.example"
RECIPIENT = "sink@sink.example"
CLIENT_NAME = "bench-client.example"

CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 15.0        # a system: from start to its 220 greeting
STOP_TIMEOUT = 40.0         # a system: from stop to all its processes gone
CLIENT_TIMEOUT = 10.0       # one socket operation of the latency client
SAMPLE_INTERVAL = 0.2       # seconds between two PSS samples under load
SETTLE_QUIET = 0.2          # a process is idle when its CPU time stood still this long
SETTLE_LIMIT = 60.0         # ... waited for at most this long
BUSY_PERCENT = 10.0         # CPU use of other processes that spoils a block
FLUSH_PROBES = 30           # fdatasyncs timed before each block


class BenchError(Exception):
    """A measurement that could not be made; the run goes on without it."""


class Fatal(Exception):
    """The benchmark cannot run at all (usage, a missing tool)."""


# ---------------------------------------------------------------- basics

def free_port():
    """free_port - a TCP port on 127.0.0.1 that was free a moment ago"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def greets(port, timeout=1.0):
    """greets - true when something on port answers with a 220 greeting"""
    try:
        with socket.create_connection((LOCALHOST, port), timeout=timeout) as s:
            line = s.makefile("rb").readline(512)
            try:
                s.sendall(b"QUIT\r\n")
            except OSError:
                pass
            return line.startswith(b"220")
    except OSError:
        return False


def wait_for(condition, timeout, what, interval=0.02):
    """wait_for - poll condition() until true; BenchError after timeout s"""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def percentile(values, p):
    """percentile - nearest-rank percentile p (0..100) of values"""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))     # ceil without floats
    return ordered[int(rank) - 1]


def summarize(values):
    """summarize - (median, min, max) of the numbers in values, or None"""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def message_bytes(size):
    """message_bytes - a message with header and a body of size bytes, CRLF"""
    head = (f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\n"
            f"Subject: smtpproxy benchmark\r\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
            f"Message-ID: <bench.{os.getpid()}.{time.monotonic_ns()}@bench.example>\r\n"
            f"\r\n").encode()
    line = b"X" * 76 + b"\r\n"
    full, rest = divmod(size, len(line))
    body = line * full
    if rest >= 3:
        body += b"Y" * (rest - 2) + b"\r\n"
    return head + body


# ---------------------------------------------------------------- /proc

def proc_children(pid):
    """proc_children - PIDs of the children of every thread of pid"""
    kids = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    kids.extend(int(p) for p in f.read().split())
            except OSError:
                pass
    except OSError:
        pass
    return kids


def proc_tree(root):
    """proc_tree - root and all its live descendants (zombies included)"""
    if root is None or not os.path.exists(f"/proc/{root}"):
        return []
    seen, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.append(pid)
        todo.extend(proc_children(pid))
    return seen


def proc_stat(pid):
    """proc_stat - the fields of /proc/PID/stat after the command name"""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2:].split()


def tree_cpu_seconds(root):
    """tree_cpu_seconds - CPU time of a process tree, waited-for children included

    Each live process counts its own user+system time plus that of the
    children it has reaped (cutime, cstime); a process that exits is reaped
    by its parent in the tree, so its time moves into the parent's cutime
    and the sum stays complete.  Clock ticks: 10 ms resolution.
    """
    total = 0
    for pid in proc_tree(root):
        try:
            f = proc_stat(pid)
        except OSError:
            continue
        # fields 14..17 of stat(5): utime stime cutime cstime
        total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / CLK_TCK


def tree_pss_kb(root):
    """tree_pss_kb - (summed PSS in KiB, process count) of a process tree"""
    total, count = 0, 0
    for pid in proc_tree(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        count += 1
                        break
        except OSError:
            continue
    return total, count


def sched_ns(pid):
    """sched_ns - nanoseconds pid has run on a CPU (/proc/PID/schedstat)"""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def proc_comm(pid):
    """proc_comm - the command name of pid, or "" """
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def kill_pids(pids, sig=signal.SIGKILL):
    """kill_pids - send sig to each of the given PIDs that still exists"""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def pids_alive(pids):
    """pids_alive - those of pids that still run (zombies count as gone)"""
    alive = []
    for pid in pids:
        try:
            if proc_stat(pid)[0] != "Z":
                alive.append(pid)
        except OSError:
            pass
    return alive


def cpu_by_process():
    """cpu_by_process - {(pid, start time): CPU ticks} of every user process"""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            f = proc_stat(int(name))
        except (OSError, ValueError):
            continue
        if f[1] == "2" or name == "2":      # kernel threads (children of kthreadd)
            continue
        out[(int(name), f[19])] = int(f[11]) + int(f[12])
    return out


class ForeignLoad:
    """CPU used by processes that are not part of the benchmark.

    Snapshots of every process's CPU time at the start and the end of a
    block; what processes outside the benchmark (this process and its
    children, the system under test) used in between, as a share of all
    CPUs.  Processes that started and ended within the block are missed.
    """

    def __init__(self, ours_fn):
        self.ours_fn = ours_fn
        self.t0 = time.monotonic()
        self.before = cpu_by_process()

    def percent(self):
        """percent - their CPU use since the start, in % of all CPUs"""
        after = cpu_by_process()
        ours = set(self.ours_fn())
        ticks = sum(v - self.before[k] for k, v in after.items()
                    if k in self.before and k[0] not in ours)
        elapsed = max(1e-3, time.monotonic() - self.t0)
        return 100.0 * ticks / CLK_TCK / elapsed / os.cpu_count()


class PssSampler:
    """Samples the PSS of a process tree in a thread; keeps the peak."""

    def __init__(self, root_fn):
        self.root_fn = root_fn
        self.peak_kb = 0
        self.peak_procs = 0
        self._stop = threading.Event()
        self._thread = None

    def _sample(self):
        kb, n = tree_pss_kb(self.root_fn())
        if kb > self.peak_kb:
            self.peak_kb = kb
        if n > self.peak_procs:
            self.peak_procs = n

    def _run(self):
        while not self._stop.wait(SAMPLE_INTERVAL):
            self._sample()

    def __enter__(self):
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()


def settle(pid, quiet=SETTLE_QUIET, limit=SETTLE_LIMIT, start_ns=None, since=None):
    """settle - wait until pid's CPU time stands still for quiet seconds

    Returns (CPU nanoseconds used since start_ns, or since the call when
    none is given, and the monotonic time of the last change seen, or
    since when none was).  Polls /proc/PID/schedstat every millisecond, so
    that time is exact to about a millisecond.
    """
    if start_ns is None:
        start_ns = sched_ns(pid)
    now = time.monotonic()
    last_ns, last_change = start_ns, since if since is not None else now
    deadline = now + limit
    while True:
        ns = sched_ns(pid)
        now = time.monotonic()
        if ns != last_ns:
            last_ns, last_change = ns, now
        elif now - last_change >= quiet:
            return ns - start_ns, last_change
        if now > deadline:
            raise BenchError(f"process {pid} still busy after {limit:g} s")
        time.sleep(0.001)


# ---------------------------------------------------------------- the sink

class Sink:
    """smtp-sink on 127.0.0.1:port, with its running counter read live.

    smtp-sink -c rewrites "sess=N quit=N mesg=N" after every "." it
    receives and flushes it at once; a thread here reads that pipe and
    notes when each new count was seen (CLOCK_MONOTONIC, the clock of the
    clients here too).  In coarse mode the thread reads at most every 5 ms,
    which keeps its own CPU use small under load.
    """

    MESG_RE = re.compile(rb"mesg=(\d+)")

    def __init__(self, port, workdir):
        self.port = port
        self.errlog = Path(workdir) / f"smtp-sink-{port}.log"
        self.proc = None
        self.coarse = False
        self._cond = threading.Condition()
        self._count = 0
        self._events = []           # (count, monotonic time it was seen)
        self._thread = None

    def start(self):
        """start - run smtp-sink and wait until it greets"""
        args = [SMTP_SINK, "-c"]
        if os.geteuid() == 0:
            args += ["-u", "postfix"]
        args += [f"{LOCALHOST}:{self.port}", "1024"]
        with open(self.errlog, "ab") as err:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=err)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        wait_for(lambda: self.proc.poll() is not None or greets(self.port),
                 START_TIMEOUT, f"smtp-sink on port {self.port}")
        if self.proc.poll() is not None:
            raise Fatal(f"smtp-sink exited: {self.errlog.read_text()[-500:]}")
        return self

    def _read(self):
        """_read - the thread: follow the counter until smtp-sink ends"""
        fd = self.proc.stdout.fileno()
        pending = b""
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                with self._cond:
                    self._cond.notify_all()
                return
            now = time.monotonic()
            pending += data
            cut = pending.rfind(b"\r")
            if cut < 0:
                continue            # no complete counter line yet
            found = self.MESG_RE.findall(pending, 0, cut)
            pending = pending[cut + 1:]
            if found:
                n = int(found[-1])
                with self._cond:
                    if n > self._count:
                        self._count = n
                        self._events.append((n, now))
                        self._cond.notify_all()
            if self.coarse:
                time.sleep(0.005)

    @property
    def count(self):
        with self._cond:
            return self._count

    def reset_events(self):
        """reset_events - forget the arrival times seen so far"""
        with self._cond:
            self._events = []

    def arrival(self, target, timeout):
        """arrival - when the count first reached target; None on timeout"""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._count < target:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return None
                self._cond.wait(min(left, 1.0))
            for n, t in self._events:
                if n >= target:
                    return t
            return time.monotonic()

    def stop(self):
        """stop - end smtp-sink (the process started here, by its PID)"""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._thread is not None:
            self._thread.join(2)
        self.proc.stdout.close()
        self.proc = None


# ---------------------------------------------------------------- systems

class Direct:
    """No proxy: the client talks to the sink itself."""

    name = "direct"
    label = "direct (ceiling)"

    def __init__(self, sink):
        self.sink = sink

    @property
    def port(self):
        return self.sink.port

    def root_pid(self):
        return None

    def start(self):
        return self

    def stop(self):
        pass


class Smtpproxy:
    """smtpproxyd as it is deployed: daemonized, logging to a file."""

    name = "smtpproxy"
    label = "smtpproxy"

    def __init__(self, workdir, sink_port, daemon, processes=4, maxprocesses=16):
        self.daemon = daemon
        self.dir = Path(workdir) / "smtpproxy"
        self.msgdir = self.dir / "msgs"
        self.conf = self.dir / "smtpproxy.ini"
        self.pidfile = self.dir / "smtpproxyd.pid"
        self.logfile = self.dir / "smtpproxy.log"
        self.sink_port = sink_port
        self.processes = processes
        self.maxprocesses = maxprocesses
        self.port = None
        self.pid = None
        self._tree = []

    def write_config(self):
        """write_config - the daemon's INI file on a fresh free port"""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf.write_text(
            "[config]\n"
            f"listen={LOCALHOST}\n"
            f"port={self.port}\n"
            f"processes={self.processes}\n"
            f"maxprocesses={self.maxprocesses}\n"
            f"msgdir={self.msgdir}\n"
            "sleeptime=30\n"
            f"pidfile={self.pidfile}\n"
            "[logging]\n"
            f"file={self.logfile}\n"
            "level=INFO\n"
            "[default]\n"
            f"smtphost={LOCALHOST}\n"
            f"smtpport={self.sink_port}\n")

    def start(self):
        """start - run the daemon; it forks into the background and greets"""
        self.write_config()
        self.pidfile.unlink(missing_ok=True)
        r = subprocess.run([self.daemon, "-c", str(self.conf)], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=START_TIMEOUT)
        if r.returncode != 0:
            raise BenchError(f"smtpproxyd exited {r.returncode}: {r.stderr.strip()}")
        wait_for(lambda: self.pidfile.exists() and self.pidfile.read_text().strip(),
                 START_TIMEOUT, "the smtpproxyd pidfile")
        self.pid = int(self.pidfile.read_text().strip())
        wait_for(lambda: greets(self.port), START_TIMEOUT,
                 f"smtpproxyd's 220 on port {self.port}")
        self._tree = proc_tree(self.pid)
        return self

    def root_pid(self):
        return self.pid

    def relay_pid(self):
        """relay_pid - the relay process (it may still be starting)"""
        return wait_for(self._find_relay, START_TIMEOUT, "smtpproxyd's relay process")

    def _find_relay(self):
        """_find_relay - the master's child holding the trigger FIFO open for reading"""
        trigger = str(self.msgdir / "trigger")
        for pid in proc_children(self.pid):
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") != trigger:
                        continue
                    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                        flags = next(int(line.split()[1], 8) for line in f
                                     if line.startswith("flags:"))
                    if flags & os.O_ACCMODE == os.O_RDONLY:
                        return pid
            except OSError:
                continue
        return None

    def trigger(self):
        """trigger - wake the relay as an accepted message does"""
        fd = os.open(self.msgdir / "trigger", os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, b"m")
        finally:
            os.close(fd)

    def stop(self):
        """stop - SIGTERM to the master, then SIGKILL whatever of it is left"""
        if self.pid is None:
            return
        tree = set(self._tree) | set(proc_tree(self.pid))
        kill_pids([self.pid], signal.SIGTERM)
        try:
            wait_for(lambda: not pids_alive(tree), STOP_TIMEOUT, "smtpproxyd to stop")
        except BenchError:
            kill_pids(pids_alive(tree))
        self.pid = None


class Postfix:
    """A private relay-only Postfix instance, from bench/postfix/*.in."""

    name = "postfix"
    label = "postfix"

    def __init__(self, workdir, sink_port):
        self.dir = Path(workdir) / "postfix"
        self.confdir = self.dir / "conf"
        self.queue = self.dir / "queue"
        self.data = self.dir / "data"
        self.logfile = self.dir / "postfix.log"
        self.sink_port = sink_port
        self.port = None
        self.pid = None
        self._tree = []

    def write_config(self):
        """write_config - main.cf and master.cf from the templates"""
        self.port = free_port()
        self.confdir.mkdir(parents=True, exist_ok=True)
        self.queue.mkdir(exist_ok=True)
        self.data.mkdir(exist_ok=True)
        pw = pwd.getpwnam("postfix")
        os.chown(self.data, pw.pw_uid, pw.pw_gid)
        fields = {
            "CONFIG_DIR": str(self.confdir), "QUEUE_DIR": str(self.queue),
            "DATA_DIR": str(self.data), "LOG_FILE": str(self.logfile),
            "SINK_PORT": str(self.sink_port), "PORT": str(self.port),
        }
        for name in ("main.cf", "master.cf"):
            text = (BENCH_DIR / "postfix" / f"{name}.in").read_text()
            for key, value in fields.items():
                text = text.replace(f"@{key}@", value)
            (self.confdir / name).write_text(text)

    def postfix(self, *args, timeout=60):
        """postfix - run the postfix command on this instance; BenchError if it fails"""
        r = subprocess.run([POSTFIX, "-c", str(self.confdir), *args],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode != 0:
            raise BenchError(f"postfix {' '.join(args)} exited {r.returncode}:"
                             f" {(r.stderr + r.stdout).strip()[-800:]}")
        return r

    def start(self):
        """start - postfix -c DIR check (once) and start; wait for its 220"""
        self.write_config()
        if not (self.queue / "pid").is_dir():
            self.postfix("check")       # also makes the queue's folders
        self.postfix("start")
        pidfile = self.queue / "pid" / "master.pid"
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(),
                 START_TIMEOUT, "the Postfix master pid file")
        self.pid = int(pidfile.read_text().strip())
        wait_for(lambda: greets(self.port), START_TIMEOUT,
                 f"Postfix's 220 on port {self.port}")
        self._tree = proc_tree(self.pid)
        return self

    def root_pid(self):
        return self.pid

    def qmgr_pid(self):
        """qmgr_pid - the queue manager process (it may still be starting)"""
        def find():
            return next((pid for pid in proc_children(self.pid)
                         if proc_comm(pid) == "qmgr"), None)
        return wait_for(find, START_TIMEOUT, "Postfix's qmgr process")

    def trigger(self):
        """trigger - ask qmgr for a deferred-queue scan, as postkick ... qmgr D does"""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(self.queue / "public" / "qmgr"))
            s.sendall(b"D")

    def stop(self):
        """stop - postfix stop; SIGKILL whatever of the instance is left"""
        if self.pid is None:
            return
        tree = set(self._tree) | set(proc_tree(self.pid))
        try:
            self.postfix("stop", timeout=STOP_TIMEOUT)
        except (BenchError, subprocess.TimeoutExpired):
            kill_pids([self.pid], signal.SIGTERM)
        try:
            wait_for(lambda: not pids_alive(tree), STOP_TIMEOUT, "Postfix to stop")
        except BenchError:
            kill_pids(pids_alive(tree))
        self.pid = None


# ---------------------------------------------------------------- clients

def smtp_source(port, count, sessions, size, timeout):
    """smtp_source - send count messages; (seconds, error text or None)"""
    args = [SMTP_SOURCE, "-s", str(min(sessions, count)), "-m", str(count),
            "-l", str(size), "-f", SENDER, "-t", RECIPIENT, "-M", CLIENT_NAME,
            f"{LOCALHOST}:{port}"]
    t0 = time.monotonic()
    try:
        r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.monotonic() - t0, f"smtp-source still running after {timeout:g} s"
    elapsed = time.monotonic() - t0
    if r.returncode != 0:
        return elapsed, f"smtp-source exited {r.returncode}: {(r.stderr + r.stdout).strip()[-300:]}"
    return elapsed, None


class _Replies:
    """The replies of an SMTP server, one (possibly multi-line) at a time."""

    def __init__(self, sock):
        self.reader = sock.makefile("rb")

    def expect(self, code):
        """expect - read one reply; BenchError unless it has this code"""
        while True:
            line = self.reader.readline(4096)
            if not line:
                raise BenchError(f"connection closed while waiting for {code}")
            if len(line) < 4 or line[3:4] != b"-":
                break
        if not line.startswith(str(code).encode()):
            raise BenchError(f"expected {code}, got {line.strip()!r}")


def send_one(port, message):
    """send_one - one SMTP session, one message, no pipelining (as smtp-source)

    Returns the monotonic time at which the 250 to the message's data came.
    """
    with socket.create_connection((LOCALHOST, port), timeout=CLIENT_TIMEOUT) as s:
        r = _Replies(s)
        r.expect(220)
        for line, code in ((f"EHLO {CLIENT_NAME}", 250), (f"MAIL FROM:<{SENDER}>", 250),
                           (f"RCPT TO:<{RECIPIENT}>", 250), ("DATA", 354)):
            s.sendall(line.encode() + b"\r\n")
            r.expect(code)
        s.sendall(message + b".\r\n")
        r.expect(250)
        accepted = time.monotonic()
        s.sendall(b"QUIT\r\n")
        r.expect(221)
    return accepted


# ---------------------------------------------------------------- results

class Results:
    """Every value measured, as rows of the long-form CSV."""

    FIELDS = ["section", "system", "size", "sessions", "spool", "rep",
              "metric", "value", "unit", "note"]

    def __init__(self):
        self.rows = []
        self.errors = []

    def add(self, section, system, metric, value, unit, size="", sessions="",
            spool="", rep="", note=""):
        self.rows.append({"section": section, "system": system, "size": size,
                          "sessions": sessions, "spool": spool, "rep": rep,
                          "metric": metric, "value": value, "unit": unit,
                          "note": note})

    def values(self, section, system, metric, **match):
        """values - the per-repetition values of one metric"""
        out = []
        for row in self.rows:
            if (row["section"] == section and row["system"] == system
                    and row["metric"] == metric and isinstance(row["rep"], int)
                    and all(row[k] == v for k, v in match.items())):
                out.append(row["value"])
        return out

    def one(self, section, system, metric, **match):
        """one - the first value of one metric, or None"""
        for row in self.rows:
            if (row["section"] == section and row["system"] == system
                    and row["metric"] == metric
                    and all(row[k] == v for k, v in match.items())):
                return row["value"]
        return None

    def write_csv(self, path, header):
        """write_csv - the header lines as "info" rows, then every value"""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.FIELDS)
            w.writeheader()
            for line in header:
                w.writerow({"section": "info", "metric": "header", "note": line})
            for row in self.rows:
                row = dict(row)
                if isinstance(row["value"], float):
                    row["value"] = f"{row['value']:.6g}"
                w.writerow(row)


# ---------------------------------------------------------------- the bench

class Bench:
    def __init__(self, opts):
        self.opts = opts
        self.results = Results()
        self.deadline = time.monotonic() + opts.time_limit
        self.workdir = Path(tempfile.mkdtemp(prefix="smtpproxy-bench.", dir=opts.workdir))
        os.chmod(self.workdir, 0o755)       # Postfix's daemons run as postfix
        # One binary for the whole run, even if the tree is rebuilt meanwhile.
        self.daemon = str(self.workdir / "smtpproxyd")
        if "smtpproxy" in opts.systems:
            shutil.copy2(DAEMON, self.daemon)
        self.sink_port = free_port()
        self.sink = None
        self.running = []                   # systems started and not stopped
        self.foreign = None                 # CPU use of other processes, this block
        self.foreign_loads = []             # ... of every block, percent
        self.block_name = ""
        self.kept_loads = []                # ... of the blocks whose figures count
        self.discarded = 0                  # blocks measured again
        self.skipped = 0

    # -- life cycle helpers

    def out_of_time(self):
        """out_of_time - true once --time-limit has passed"""
        return time.monotonic() > self.deadline

    def make_system(self, name):
        """make_system - the controller of one system under test"""
        if name == "smtpproxy":
            return Smtpproxy(self.workdir, self.sink_port, self.daemon)
        if name == "postfix":
            return Postfix(self.workdir, self.sink_port)
        return Direct(self.sink)

    def wait_idle(self):
        """wait_idle - up to --wait-idle seconds for the machine to be quiet"""
        limit = self.opts.wait_idle
        if limit <= 0:
            return
        deadline = time.monotonic() + limit
        busy = cpu_busy(1.0)
        if busy < 10:
            return
        self.progress(f"the machine is busy ({busy:.0f}% CPU): waiting up to {limit:g} s")
        while time.monotonic() < deadline and not self.out_of_time():
            busy = cpu_busy(2.0)
            if busy < 10:
                return
        self.progress(f"still busy ({busy:.0f}% CPU): going on")

    def start_block(self, name, warmup=True):
        """start_block - a fresh sink and a fresh system, warmed up"""
        self.wait_idle()
        self.block_name = name
        self.sink = Sink(self.sink_port, self.workdir).start()
        system = self.make_system(name)
        self.foreign = ForeignLoad(lambda: proc_tree(os.getpid()) + proc_tree(system.root_pid()))
        self.running.append(system)
        system.start()
        warm = self.opts.warmup if warmup else 0
        if warm:
            base = self.sink.count
            # one session: the pool stays at its start size for the idle figures
            _, err = smtp_source(system.port, warm, 1, 1024, 60)
            if err:
                raise BenchError(f"{name}: warm-up: {err}")
            if self.sink.arrival(base + warm, 60) is None:
                raise BenchError(f"{name}: warm-up messages did not all arrive")
            time.sleep(0.3)
        return system

    def end_block(self, system):
        """end_block - stop the system and the sink; note the others' CPU use"""
        if self.foreign is not None:
            pct = self.foreign.percent()
            self.foreign_loads.append(pct)
            self.foreign = None
            self.results.add("machine", self.block_name, "foreign_cpu", pct, "%",
                             rep=len(self.foreign_loads),
                             note="CPU used by other processes during the block")
            if pct >= BUSY_PERCENT:
                self.progress(f"{self.block_name}: other processes used {pct:.0f}%"
                              f" of the CPUs during this block")
        try:
            system.stop()
        finally:
            if system in self.running:
                self.running.remove(system)
            if self.sink is not None:
                self.sink.stop()
                self.sink = None

    def cleanup(self):
        """cleanup - stop everything started here; remove the work folder"""
        for system in list(self.running):
            try:
                system.stop()
            except Exception as e:     # keep cleaning up whatever failed
                print(f"bench: stopping {system.name}: {e}", file=sys.stderr)
        self.running = []
        if self.sink is not None:
            self.sink.stop()
            self.sink = None
        if self.opts.keep:
            print(f"bench: work folder kept: {self.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def error(self, what):
        """error - a measurement failed: keep going, exit 1 at the end"""
        self.results.errors.append(what)
        print(f"bench: ERROR {what}", file=sys.stderr)

    def progress(self, text):
        """progress - one line on stderr (not with --quiet)"""
        if not self.opts.quiet:
            print(f"  {text}", file=sys.stderr, flush=True)

    # -- throughput

    def throughput_point(self, system, size, sessions, count, rep):
        """throughput_point - one run of smtp-source against one system"""
        r = self.results
        key = dict(size=size, sessions=sessions, rep=rep)
        if self.out_of_time():
            self.skipped += 1
            r.add("throughput", system.name, "skipped", 1, "", note="time limit", **key)
            return
        self.sink.reset_events()
        self.sink.coarse = True
        base = self.sink.count
        root = system.root_pid()
        cpu0 = tree_cpu_seconds(root) if root else None
        t0 = time.monotonic()
        with PssSampler(system.root_pid) as pss:
            accept_s, err = smtp_source(system.port, count, sessions, size,
                                        self.opts.run_timeout)
            arrived = self.sink.arrival(base + count, self.opts.run_timeout)
        cpu1 = tree_cpu_seconds(root) if root else None
        self.sink.coarse = False
        if err:
            self.error(f"{system.name} {size} B c={sessions}: {err}")
            r.add("throughput", system.name, "error", 1, "", note=err, **key)
            self.wait_drain(base + count)
            return
        if arrived is None:
            got = self.sink.count - base
            self.error(f"{system.name} {size} B c={sessions}: only {got} of {count}"
                       f" messages reached the sink within {self.opts.run_timeout:g} s")
            r.add("throughput", system.name, "error", 1, "", note="incomplete", **key)
            return
        e2e_s = arrived - t0
        r.add("throughput", system.name, "messages", count, "msg", **key)
        r.add("throughput", system.name, "accept_rate", count / accept_s, "msg/s", **key)
        r.add("throughput", system.name, "e2e_rate", count / e2e_s, "msg/s", **key)
        r.add("throughput", system.name, "tail", max(0.0, e2e_s - accept_s), "s", **key)
        if root:
            r.add("throughput", system.name, "cpu_per_msg",
                  (cpu1 - cpu0) * 1000 / count, "ms", **key)
            r.add("throughput", system.name, "pss_peak", pss.peak_kb / 1024, "MiB", **key)
            r.add("throughput", system.name, "procs_peak", pss.peak_procs, "", **key)
        self.progress(f"{system.name:9} {size:>6} B c={sessions:<2} rep {rep}:"
                      f" accept {count / accept_s:7.0f}/s  e2e {count / e2e_s:7.0f}/s"
                      f"  tail {max(0.0, e2e_s - accept_s):5.2f} s")
        time.sleep(self.opts.pause)

    def wait_drain(self, target):
        """wait_drain - after a failed run, give late messages a bounded chance"""
        self.sink.arrival(target, 10)

    def measure(self):
        """measure - throughput blocks, latency in the last one, then the scans

        Each system runs in blocks (a fresh sink, a fresh start, a warm-up):
        one per repetition, in an order that rotates so no system always
        follows the same one.  The idle latency is taken in the last block,
        after a pause.  The scans come last for every system: removing a
        hundred thousand files makes the next file creations slower for a
        while (ext4 skips recently freed inodes), and that must not fall on
        one system's throughput.
        """
        o = self.opts
        systems = list(o.systems)
        do_tp = "throughput" in o.sections
        do_lat = "latency" in o.sections
        reps = o.reps if do_tp else (1 if do_lat else 0)
        for rep in range(1, reps + 1):
            shift = (rep - 1) % len(systems)
            for name in systems[shift:] + systems[:shift]:
                if self.out_of_time():
                    self.skipped += 1
                    break
                self.progress(f"{name}: block {rep} of {reps}")

                def body(system, rep=rep, name=name):
                    if rep == 1 and system.root_pid():
                        kb, n = tree_pss_kb(system.root_pid())
                        self.results.add("memory", name, "pss_idle", kb / 1024, "MiB")
                        self.results.add("memory", name, "procs_idle", n, "")
                    if do_tp:
                        for size in o.sizes:
                            for sessions in o.sessions:
                                self.throughput_point(system, size, sessions,
                                                      o.count_for(size), rep)
                    if do_lat and rep == reps:
                        time.sleep(o.idle_pause)
                        self.latency(system)
                self.block(name, body)
        if do_lat:
            self.latency_added()
        if "scan" in o.sections:
            for name in systems:
                if name == "direct":
                    continue
                if self.out_of_time():
                    self.skipped += 1
                    break
                self.progress(f"{name}: scan")
                self.block(name, self.scan, warmup=False)

    def block(self, name, body, warmup=True):
        """block - body(system) in a block; again when other processes took the CPU

        A block during which processes outside the benchmark used 10% or more
        of the CPUs is measured again, up to --retry-busy times; the rows of
        the busy one stay in the CSV with "-discarded" after their section.
        """
        for attempt in range(1 + self.opts.retry_busy):
            first = len(self.results.rows)
            self.results.add("disk", "", "flush", flush_ms(self.workdir), "ms",
                             note=f"before a block of {name}")
            try:
                system = self.start_block(name, warmup=warmup)
            except BenchError as e:
                self.error(f"{name}: cannot start: {e}")
                self.end_block_quietly()
                return
            try:
                body(system)
            except (BenchError, OSError) as e:
                self.error(f"{name}: {e}")
            finally:
                self.end_block(system)
            busy = self.foreign_loads[-1] if self.foreign_loads else 0.0
            if (busy < BUSY_PERCENT or attempt == self.opts.retry_busy
                    or self.out_of_time()):
                self.kept_loads.append(busy)
                return
            self.discarded += 1
            for row in self.results.rows[first:]:
                if row["section"] != "machine":
                    row["section"] += "-discarded"
                    row["note"] = f"other processes used {busy:.0f}% of the CPUs"
            self.progress(f"{name}: measuring this block again")

    def end_block_quietly(self):
        """end_block_quietly - after a failed start: stop what did start"""
        for system in list(self.running):
            try:
                self.end_block(system)
            except Exception as e:
                print(f"bench: stopping {system.name}: {e}", file=sys.stderr)
        if self.sink is not None:
            self.sink.stop()
            self.sink = None

    # -- latency

    def latencies(self, system, count, size=1024, accepts=None):
        """latencies - count messages one at a time; seconds start -> arrival

        With a list as accepts, also the seconds start -> 250 of each.
        """
        out = []
        for _ in range(count):
            if self.out_of_time():
                break
            message = message_bytes(size)
            target = self.sink.count + 1
            t0 = time.monotonic()
            accepted = send_one(system.port, message)
            arrived = self.sink.arrival(target, 10)
            if arrived is None:
                raise BenchError(f"{system.name}: a message did not arrive within 10 s")
            out.append(arrived - t0)
            if accepts is not None:
                accepts.append(accepted - t0)
            time.sleep(self.opts.latency_gap)
        return out

    def latency(self, system):
        """latency - the idle latency of one running system"""
        o = self.opts
        self.progress(f"{system.name}: latency, {o.latency_count} messages one at a time")
        accepts = []
        try:
            lat = self.latencies(system, o.latency_count, accepts=accepts)
        except (BenchError, OSError) as e:
            self.error(f"latency {system.name}: {e}")
            return
        if not lat:
            return
        r = self.results
        r.add("latency", system.name, "n", len(lat), "msg")
        r.add("latency", system.name, "accept_p50", percentile(accepts, 50) * 1000, "ms")
        r.add("latency", system.name, "accept_p99", percentile(accepts, 99) * 1000, "ms")
        r.add("latency", system.name, "p50", percentile(lat, 50) * 1000, "ms")
        r.add("latency", system.name, "p99", percentile(lat, 99) * 1000, "ms")
        r.add("latency", system.name, "max", max(lat) * 1000, "ms")

    def latency_added(self):
        """latency_added - what each proxy adds to the direct path"""
        r = self.results
        d50 = r.one("latency", "direct", "p50")
        d99 = r.one("latency", "direct", "p99")
        for name in ("smtpproxy", "postfix"):
            p50 = r.one("latency", name, "p50")
            p99 = r.one("latency", name, "p99")
            if p50 is not None and d50 is not None:
                r.add("latency", name, "added_p50", p50 - d50, "ms")
                r.add("latency", name, "added_p99", p99 - d99, "ms")

    # -- relay scan

    def fill_smtpproxy_spool(self, system, n):
        """fill_smtpproxy_spool - n messages in cur/, deferred until tomorrow"""
        for sub in ("tmp", "new", "cur", "failed"):
            (system.msgdir / sub).mkdir(parents=True, exist_ok=True)
        now = int(time.time())
        due = now + 86400
        body = message_bytes(1024)
        cur = system.msgdir / "cur"
        for i in range(n):
            qid = f"{now - 600}.M{i % 1000000:06d}P{40000 + i // 1000000}Q{i + 1}.benchhost"
            content = (b"X-Envelope-From: <" + SENDER.encode() + b">\r\n"
                       b"X-Envelope-To: <" + RECIPIENT.encode() + b">\r\n"
                       b"Received: from bench (127.0.0.1) by benchhost (smtpproxy)"
                       b" with ESMTP id " + qid.encode() + b"\r\n" + body)
            fd = os.open(cur / f"{qid}:1,A1,T{due}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, content)
            os.close(fd)

    def fill_postfix_deferred(self, system, n):
        """fill_postfix_deferred - n queue files in deferred/, not due until tomorrow

        qmgr opens a deferred file only when it is due: before that it checks
        the name, lstat()s the file (mode 0700 = complete) and compares the
        mtime with now.  The files are placed as Postfix hashes them
        (hash_queue_depth 1: deferred/<first char of the ID>/ID) with short
        hexadecimal queue IDs; their content is never read.
        """
        pw = pwd.getpwnam("postfix")
        deferred = system.queue / "deferred"
        due = time.time() + 86400
        made = set()
        for i in range(n):
            qid = f"{(i * 7919) % 0xF4240:05X}{0x100000 + i:X}"
            sub = deferred / qid[0]
            if qid[0] not in made:
                sub.mkdir(mode=0o700, exist_ok=True)
                os.chown(sub, pw.pw_uid, pw.pw_gid)
                made.add(qid[0])
            path = sub / qid
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700)
            os.write(fd, b"C 1024 0 0 1 0 0 0\n")
            os.fchown(fd, pw.pw_uid, pw.pw_gid)
            os.fchmod(fd, 0o700)
            os.close(fd)
            os.utime(path, (due, due))

    def strace_pass(self, system, pid):
        """strace_pass - system calls of pid during one triggered pass, or None"""
        if not shutil.which("strace"):
            return None
        settle(pid, quiet=2 * self.opts.settle_quiet)      # no pass under way
        out = self.workdir / f"strace-{system.name}-{pid}.txt"
        tracer = subprocess.Popen(["strace", "-c", "-f", "-o", str(out), "-p", str(pid)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        try:
            time.sleep(2 * self.opts.settle_quiet)      # attached by then
            if tracer.poll() is not None:
                return None
            system.trigger()
            settle(pid, quiet=2 * self.opts.settle_quiet)
        finally:
            if tracer.poll() is None:
                tracer.send_signal(signal.SIGINT)
            try:
                tracer.wait(10)
            except subprocess.TimeoutExpired:
                tracer.kill()
                tracer.wait(5)
            tracer.stderr.close()
        calls = {}
        try:
            for line in out.read_text().splitlines():
                f = line.split()
                if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
                    # % time, seconds, usecs/call, calls, [errors], syscall
                    calls[f[-1]] = int(f[3])
        except OSError:
            return None
        return calls

    def passes(self, system, worker, spool):
        """passes - triggered passes of the relay (qmgr) over the spool as it is"""
        o = self.opts
        r = self.results
        key = dict(spool=spool)
        settle(worker, quiet=2 * o.settle_quiet)    # nothing else going on
        cpu, wall = [], []
        for _ in range(o.scan_passes):
            cpu0 = sched_ns(worker)
            t0 = time.monotonic()
            system.trigger()
            used_ns, last = settle(worker, quiet=o.settle_quiet, start_ns=cpu0, since=t0)
            cpu.append(used_ns / 1e6)
            wall.append((last - t0) * 1000)
        r.add("scan", system.name, "cpu_per_pass", statistics.median(cpu), "ms", **key)
        r.add("scan", system.name, "wall_per_pass", statistics.median(wall), "ms", **key)
        lat = self.latencies(system, o.scan_latency_count)
        if lat:
            r.add("scan", system.name, "msg_latency_p50", percentile(lat, 50) * 1000,
                  "ms", **key)
        calls = self.strace_pass(system, worker)
        if calls:
            per_file = sum(v for k, v in calls.items()
                           if k in ("newfstatat", "fstatat64", "stat", "lstat", "statx",
                                    "openat", "open", "access", "faccessat"))
            r.add("scan", system.name, "syscalls_per_pass", sum(calls.values()), "calls",
                  **key)
            r.add("scan", system.name, "stat_open_per_pass", per_file, "calls", **key)
            r.add("scan", system.name, "getdents_per_pass", calls.get("getdents64", 0),
                  "calls", **key)

    def scan(self, system):
        """scan - passes over an empty queue, then over one of scan_count waiting

        The not-yet-due messages are written while the system runs: neither
        looks at them before the next pass (smtpproxy's relay may wake on
        its sleeptime meanwhile, and sees files that are not due).
        """
        o = self.opts
        if system.name == "smtpproxy":
            worker = system.relay_pid()
            fill = self.fill_smtpproxy_spool
            left = system.msgdir / "cur"
        else:
            worker = system.qmgr_pid()
            fill = self.fill_postfix_deferred
            left = system.queue / "deferred"
        for old in left.glob("*"):          # from a block measured again
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink()
        self.passes(system, worker, 0)
        t = time.monotonic()
        fill(system, o.scan_count)
        self.progress(f"{system.name}: {o.scan_count} messages written in"
                      f" {time.monotonic() - t:.1f} s")
        self.passes(system, worker, o.scan_count)

    # -- summaries

    def summarize_throughput(self):
        """summarize_throughput - median/min/max rows and the headline ratios"""
        r = self.results
        o = self.opts
        for size in o.sizes:
            for sessions in o.sessions:
                for name in o.systems:
                    for metric in ("accept_rate", "e2e_rate", "tail", "cpu_per_msg",
                                   "pss_peak", "procs_peak"):
                        s = summarize(r.values("throughput", name, metric,
                                               size=size, sessions=sessions))
                        if s is None:
                            continue
                        unit = next(row["unit"] for row in r.rows
                                    if row["metric"] == metric)
                        for label, v in zip(("median", "min", "max"), s):
                            r.add("throughput", name, metric, v, unit, size=size,
                                  sessions=sessions, rep=label)
                for metric in ("accept_rate", "e2e_rate", "cpu_per_msg", "pss_peak"):
                    a = r.one("throughput", "smtpproxy", metric, size=size,
                              sessions=sessions, rep="median")
                    b = r.one("throughput", "postfix", metric, size=size,
                              sessions=sessions, rep="median")
                    if a is not None and b:
                        r.add("throughput", "smtpproxy/postfix", metric, a / b, "ratio",
                              size=size, sessions=sessions, rep="median")
        a = r.one("latency", "smtpproxy", "added_p50")
        b = r.one("latency", "postfix", "added_p50")
        if a is not None and b:
            r.add("latency", "smtpproxy/postfix", "added_p50", a / b, "ratio")
        a = r.one("latency", "smtpproxy", "added_p99")
        b = r.one("latency", "postfix", "added_p99")
        if a is not None and b:
            r.add("latency", "smtpproxy/postfix", "added_p99", a / b, "ratio")


# ---------------------------------------------------------------- report

def human_size(n):
    """human_size - "1 KiB" for 1024, else bytes"""
    return f"{n // 1024} KiB" if n % 1024 == 0 else f"{n} B"


def fmt(v, digits=0):
    """fmt - a number for the table, "-" for none"""
    if v is None:
        return "-"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def fmt_spread(s, digits=0):
    """fmt_spread - 'median ±half-range%' of a (median, min, max)"""
    if s is None:
        return "-"
    med, lo, hi = s
    if med and hi > lo:
        return f"{fmt(med, digits)} ±{(hi - lo) / 2 / med * 100:.0f}%"
    return fmt(med, digits)


def cpu_busy(seconds=1.0):
    """cpu_busy - percent of all CPUs busy over the next seconds (/proc/stat)"""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]          # total, idle + iowait
    t0, i0 = sample()
    time.sleep(seconds)
    t1, i1 = sample()
    return 100.0 * (1 - (i1 - i0) / max(1, t1 - t0))


def flush_ms(folder, n=FLUSH_PROBES):
    """flush_ms - p50 ms of one fdatasync of a rewritten 1 KiB file

    That is about one cache flush of the disk: what every durable 250 waits
    for (smtpproxy waits for two, the file and its name in new/; Postfix
    for one), so at one session at a time it sets the pace, and it varies
    from run to run on a virtual disk.
    """
    path = Path(folder) / "flush-probe"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for i in range(n):
            os.pwrite(fd, bytes([65 + i % 26]) * 1024, 0)
            t = time.monotonic()
            os.fdatasync(fd)
            times.append((time.monotonic() - t) * 1000)
            time.sleep(0.002)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return statistics.median(times)


def machine_lines(opts, workdir):
    """machine_lines - what ran where: CPU, memory, file system, versions, load"""
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    fstype, dev = "?", "?"
    best = ""
    for line in open("/proc/mounts"):
        f = line.split()
        if str(workdir).startswith(f[1]) and len(f[1]) >= len(best):
            best, dev, fstype = f[1], f[0], f[2]
    try:
        binary = workdir / "smtpproxyd"
        version = subprocess.run([str(binary) if binary.exists() else DAEMON, "-V"],
                                 capture_output=True, text=True,
                                 timeout=5).stdout.strip()
    except OSError:
        version = "smtpproxyd ?"
    try:
        commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
        if commit and dirty:
            commit += "+changes"
    except OSError:
        commit = ""
    try:
        pf = subprocess.run(["postconf", "-h", "-d", "mail_version"], capture_output=True,
                            text=True, timeout=10).stdout.strip() or "?"
    except OSError:
        pf = "?"
    load = open("/proc/loadavg").read().split()[:3]
    busy = cpu_busy()
    warn = ("" if busy < BUSY_PERCENT or opts.wait_idle > 0 else
            f"  WARNING: the machine is not idle ({busy:.0f}% CPU busy before the"
            f" start): figures are skewed")
    return [
        f"machine: {cpu}, {os.cpu_count()} cores, {mem:.1f} GiB,"
        f" Linux {platform.release()}",
        f"spools on {fstype} ({dev}), work folder {workdir.parent}",
        f"{version}{' (git ' + commit + ')' if commit else ''}, Postfix {pf}",
        f"load average at start {' '.join(load)}, CPU busy before the start"
        f" {busy:.0f}%" + warn,
    ]


def print_report(bench, header, out=sys.stdout):
    """print_report - the tables, the targets and what went wrong"""
    r = bench.results
    o = bench.opts
    p = lambda s="": print(s, file=out)
    p()
    for line in header:
        p(line)
    p(f"{o.reps} repetition(s) per point: median ±half the range;"
      f" smtp-source opens one connection per message")
    p()
    p("THROUGHPUT")
    p(f"{'size':7} {'c':>3}  {'system':16} {'msgs':>5}  {'accept msg/s':>14}"
      f"  {'end-to-end msg/s':>16}  {'tail s':>7}  {'CPU ms/msg':>10}  {'PSS MiB (procs)':>15}")
    for size in o.sizes:
        for sessions in o.sessions:
            first = True
            for name in o.systems:
                def s(metric, _name=name):
                    return summarize(r.values("throughput", _name, metric,
                                              size=size, sessions=sessions))
                acc = s("accept_rate")
                if acc is None and not r.values("throughput", name, "error",
                                                size=size, sessions=sessions):
                    continue
                cpu = s("cpu_per_msg")
                pss = s("pss_peak")
                procs = s("procs_peak")
                tail = s("tail")
                lead = f"{human_size(size):7} {sessions:>3}" if first else " " * 11
                first = False
                label = Direct.label if name == "direct" else name
                if acc is None:
                    p(f"{lead}  {label:16} {'failed':>5}")
                    continue
                pss_txt = (f"{pss[0]:.1f} ({procs[1]:.0f}-{procs[2]:.0f})"
                           if pss else "-")
                p(f"{lead}  {label:16} {o.count_for(size):>5}  {fmt_spread(acc):>14}"
                  f"  {fmt_spread(s('e2e_rate')):>16}  {fmt(tail[0] if tail else None, 2):>7}"
                  f"  {fmt(cpu[0] if cpu else None, 3):>10}  {pss_txt:>15}")
            ratios = {m: r.one("throughput", "smtpproxy/postfix", m, size=size,
                               sessions=sessions, rep="median")
                      for m in ("accept_rate", "e2e_rate", "cpu_per_msg", "pss_peak")}
            if any(v is not None for v in ratios.values()):
                def x(v):
                    return f"{v:.2f}x" if v is not None else "-"
                p(f"{'':11}  {'smtpproxy/postfix':16} {'':5}  {x(ratios['accept_rate']):>14}"
                  f"  {x(ratios['e2e_rate']):>16}  {'':7}  {x(ratios['cpu_per_msg']):>10}"
                  f"  {x(ratios['pss_peak']):>15}")
    p()
    kb = [(n, r.one("memory", n, "pss_idle"), r.one("memory", n, "procs_idle"))
          for n in o.systems if r.one("memory", n, "pss_idle") is not None]
    if kb:
        p("MEMORY idle after start (PSS of all processes): " +
          "; ".join(f"{n} {v:.1f} MiB in {c} processes" for n, v, c in kb))
        p()
    p("IDLE LATENCY client start -> arrival at the sink, one message at a time (1 KiB);"
      " 250: client start -> the 250 after the data")
    p(f"{'system':18} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
      f" {'added p50':>10} {'added p99':>10}   {'250 p50':>8} {'250 p99':>8}")
    for name in o.systems:
        n = r.one("latency", name, "n")
        if n is None:
            continue
        label = Direct.label if name == "direct" else name
        p(f"{label:18} {n:>5} {fmt(r.one('latency', name, 'p50'), 2):>8}"
          f" {fmt(r.one('latency', name, 'p99'), 2):>8} {fmt(r.one('latency', name, 'max'), 2):>8}"
          f" {fmt(r.one('latency', name, 'added_p50'), 2):>10}"
          f" {fmt(r.one('latency', name, 'added_p99'), 2):>10}"
          f"   {fmt(r.one('latency', name, 'accept_p50'), 2):>8}"
          f" {fmt(r.one('latency', name, 'accept_p99'), 2):>8}")
    a = r.one("latency", "smtpproxy/postfix", "added_p50")
    b = r.one("latency", "smtpproxy/postfix", "added_p99")
    if a is not None:
        p(f"{'smtpproxy/postfix':18} {'':5} {'':8} {'':8} {'':8} {a:>9.2f}x"
          f" {b if b is None else format(b, '.2f') + 'x':>10}")
    p()
    p("RELAY SCAN one pass over a spool of messages that are not yet due"
      " (smtpproxy: relay wake-up; postfix: qmgr deferred scan)")
    p(f"{'system':10} {'waiting':>8} {'CPU ms':>8} {'wall ms':>8} {'syscalls':>9}"
      f" {'stat+open':>9} {'getdents':>9} {'new msg p50 ms':>15}")
    for name in o.systems:
        for spool in (0, o.scan_count):
            cpu = r.one("scan", name, "cpu_per_pass", spool=spool)
            if cpu is None:
                continue
            g = lambda m: r.one("scan", name, m, spool=spool)
            p(f"{name:10} {spool:>8} {fmt(cpu, 2):>8} {fmt(g('wall_per_pass'), 1):>8}"
              f" {fmt(g('syscalls_per_pass')):>9} {fmt(g('stat_open_per_pass')):>9}"
              f" {fmt(g('getdents_per_pass')):>9} {fmt(g('msg_latency_p50'), 2):>15}")
    p()
    targets = target_lines(bench)
    if len(targets) > 1:
        p("TARGETS of issue 7 (ratios smtpproxy/postfix in this run)")
        for line in targets:
            p(line)
        p()
    if bench.skipped:
        p(f"note: {bench.skipped} measurement(s) skipped: the time limit"
          f" ({o.time_limit:g} s) was reached")
    if r.errors:
        p(f"{len(r.errors)} measurement(s) failed:")
        for e in r.errors:
            p(f"  {e}")


def target_lines(bench):
    """target_lines - each target of the issue, the value measured, met or not"""
    r = bench.results
    o = bench.opts
    out = []

    def line(what, value, target, ok):
        if value is None:
            return
        v = value
        mark = "-" if ok is None else ("yes" if ok else "NO")
        out.append(f"  {what:52} {v:>10} {target:>10}  {mark}")

    def ratio(metric, size, sessions):
        return r.one("throughput", "smtpproxy/postfix", metric, size=size,
                     sessions=sessions, rep="median")

    out.append(f"  {'':52} {'measured':>10} {'target':>10}  met")
    for size, want in ((1024, 3.0), (102400, 2.0)):
        if size not in o.sizes:
            continue
        for sessions in o.sessions:
            if size == 1024 and sessions == 1:
                continue
            v = ratio("accept_rate", size, sessions)
            line(f"acceptance {human_size(size)} c={sessions}",
                 None if v is None else f"{v:.2f}x", f">={want:g}x",
                 None if v is None else v >= want)
    for size in o.sizes:
        for sessions in o.sessions:
            v = ratio("e2e_rate", size, sessions)
            line(f"end-to-end {human_size(size)} c={sessions}",
                 None if v is None else f"{v:.2f}x", ">=2x", None if v is None else v >= 2)
    a = r.one("latency", "smtpproxy", "added_p50")
    b = r.one("latency", "postfix", "added_p50")
    if a is not None and b is not None:
        line("idle latency added, p50 (smtpproxy vs half of postfix)",
             f"{a:.2f} ms", f"<={b / 2:.2f} ms", a <= b / 2)
    a = r.one("latency", "smtpproxy", "added_p99")
    b = r.one("latency", "postfix", "added_p99")
    if a is not None and b is not None:
        line("idle latency added, p99 (smtpproxy vs half of postfix)",
             f"{a:.2f} ms", f"<={b / 2:.2f} ms", a <= b / 2)
    v = r.one("latency", "smtpproxy", "p99")
    if v is not None:
        line("idle latency p99, smtpproxy", f"{v:.2f} ms", "<20 ms", v < 20)
    if 1024 in o.sizes and 1 in o.sessions:
        s = summarize(r.values("throughput", "smtpproxy", "pss_peak", size=1024, sessions=1))
        n = summarize(r.values("throughput", "smtpproxy", "procs_peak", size=1024, sessions=1))
        if s is not None:
            line(f"PSS under load, 1 KiB c=1 ({n[2]:.0f} processes)", f"{s[2]:.1f} MiB",
                 "<10 MiB", s[2] < 10)
    v = r.one("scan", "smtpproxy", "wall_per_pass", spool=o.scan_count)
    if v is not None:
        line(f"relay pass with {o.scan_count} waiting, wall", f"{v:.0f} ms", "<1000 ms",
             v < 1000)
    v = r.one("scan", "smtpproxy", "stat_open_per_pass", spool=o.scan_count)
    v0 = r.one("scan", "smtpproxy", "stat_open_per_pass", spool=0)
    if v is not None and v0 is not None:
        line("stat/open calls per pass for not-due messages", f"{v - v0:.0f}", "0",
             v - v0 <= 0)
    return out


# ---------------------------------------------------------------- main

def parse_args(argv):
    """parse_args - the options, with the defaults of a full or a quick run"""
    ap = argparse.ArgumentParser(
        description="Benchmark smtpproxyd against a private Postfix instance,"
                    " with Postfix's smtp-source and smtp-sink, on 127.0.0.1 only.")
    ap.add_argument("--quick", action="store_true",
                    help="a few messages per point, one repetition (a smoke test, < 30 s)")
    ap.add_argument("--csv", metavar="FILE",
                    help="where to write the CSV (default bench/results-DATE.csv;"
                         " with --quick none unless given)")
    ap.add_argument("--systems", default="smtpproxy,postfix,direct",
                    help="comma-separated subset of smtpproxy,postfix,direct")
    ap.add_argument("--sizes", default="1024,102400", help="message body sizes in bytes")
    ap.add_argument("--sessions", default="1,10,50", help="concurrent sessions")
    ap.add_argument("--messages", type=int, help="messages per point at 1 KiB (default 2000)")
    ap.add_argument("--large-messages", type=int,
                    help="messages per point at sizes over 10 KiB (default 500)")
    ap.add_argument("--reps", type=int, help="repetitions per point (default 3)")
    ap.add_argument("--latency-count", type=int,
                    help="messages for the idle latency (default 300)")
    ap.add_argument("--scan-count", type=int,
                    help="messages waiting in the spool for the scan (default 100000)")
    ap.add_argument("--sections", default="throughput,latency,scan",
                    help="comma-separated subset of throughput,latency,scan")
    ap.add_argument("--workdir", default="/var/tmp",
                    help="folder for the temporary spools (default /var/tmp; not a tmpfs)")
    ap.add_argument("--time-limit", type=float,
                    help="seconds after which remaining measurements are skipped"
                         " (default 1500; 60 with --quick)")
    ap.add_argument("--run-timeout", type=float, default=120.0,
                    help="seconds one throughput run may take (default 120)")
    ap.add_argument("--wait-idle", type=float,
                    help="seconds to wait before each block for the machine to be idle"
                         " (default 180; 0 with --quick)")
    ap.add_argument("--retry-busy", type=int,
                    help="times a block is measured again when other processes used"
                         " 10%% or more of the CPUs during it (default 2; 0 with --quick)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    o = ap.parse_args(argv)

    q = o.quick
    o.reps = o.reps or (1 if q else 3)
    o.messages = o.messages or (20 if q else 2000)
    o.large_messages = o.large_messages or (10 if q else 500)
    o.latency_count = o.latency_count or (10 if q else 300)
    o.scan_count = o.scan_count or (2000 if q else 100000)
    o.time_limit = o.time_limit or (60.0 if q else 1500.0)
    if o.wait_idle is None:
        o.wait_idle = 0.0 if q else 180.0
    if o.retry_busy is None:
        o.retry_busy = 0 if q else 2
    o.scan_passes = 1 if q else 5
    o.scan_latency_count = 3 if q else 20
    o.warmup = 5 if q else 50
    o.pause = 0.1 if q else 0.5
    o.latency_gap = 0.005 if q else 0.02
    o.settle_quiet = 0.1 if q else 0.25
    o.idle_pause = 0.3 if q else 3.0
    try:
        o.systems = [s for s in o.systems.split(",") if s]
        o.sizes = [int(s) for s in o.sizes.split(",") if s]
        o.sessions = [int(s) for s in o.sessions.split(",") if s]
        o.sections = [s for s in o.sections.split(",") if s]
    except ValueError:
        ap.error("--sizes and --sessions take comma-separated numbers")
    bad = set(o.systems) - {"smtpproxy", "postfix", "direct"}
    if bad or not o.systems:
        ap.error(f"unknown system(s): {', '.join(sorted(bad)) or 'none given'}")
    bad = set(o.sections) - {"throughput", "latency", "scan"}
    if bad:
        ap.error(f"unknown section(s): {', '.join(sorted(bad))}")
    if any(s < 100 for s in o.sizes) or any(c < 1 for c in o.sessions):
        ap.error("sizes must be >= 100 bytes and sessions >= 1")
    o.count_for = lambda size: o.large_messages if size > 10240 else o.messages
    return o


def check_tools(o):
    """check_tools - what the chosen systems need is here; Fatal if not"""
    missing = [t for t in (SMTP_SOURCE, SMTP_SINK) if not os.access(t, os.X_OK)]
    if missing:
        raise Fatal(f"missing {', '.join(missing)}: install Debian's postfix package"
                    " (sh bench/deps.sh)")
    if "smtpproxy" in o.systems and not os.access(DAEMON, os.X_OK):
        raise Fatal(f"no daemon at {DAEMON}: run make first")
    if "postfix" in o.systems:
        if os.geteuid() != 0:
            print("bench: not root: Postfix cannot run as a private instance;"
                  " measuring without it", file=sys.stderr)
            o.systems.remove("postfix")
        elif not os.access(POSTFIX, os.X_OK):
            raise Fatal(f"missing {POSTFIX}: install Debian's postfix package")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postfix")
        except KeyError:
            raise Fatal("no postfix user: install Debian's postfix package")
    if not o.systems:
        raise Fatal("no system left to measure")


def on_signal(signum, frame):
    """on_signal - SIGTERM/SIGHUP unwind like Ctrl-C, through the clean-up"""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv):
    """main - check the tools, measure, clean up, report; the exit status"""
    o = parse_args(argv)
    try:
        check_tools(o)
    except Fatal as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    started = datetime.datetime.now(datetime.timezone.utc)
    bench = Bench(o)
    header = [f"smtpproxy benchmark, {started:%Y-%m-%d %H:%M} UTC"
              f"{' (quick smoke run: figures mean nothing)' if o.quick else ''}"]
    header += machine_lines(o, bench.workdir)
    interrupted = False
    try:
        bench.measure()
    except KeyboardInterrupt:
        interrupted = True
        print("bench: interrupted; stopping what was started", file=sys.stderr)
    except Fatal as e:
        bench.error(str(e))
    finally:
        bench.cleanup()
    bench.summarize_throughput()
    elapsed = time.monotonic() - (bench.deadline - o.time_limit)
    header.append(f"run took {elapsed:.0f} s; load average at the end"
                  f" {' '.join(open('/proc/loadavg').read().split()[:3])}")
    if bench.kept_loads:
        worst = max(bench.kept_loads)
        mean = sum(bench.kept_loads) / len(bench.kept_loads)
        header.append(f"other processes on the machine used {mean:.0f}% of the CPUs"
                      f" during the blocks (at most {worst:.0f}% in one)"
                      + (f"; {bench.discarded} busy block(s) measured again"
                         if bench.discarded else "")
                      + ("  WARNING: figures are skewed" if worst >= BUSY_PERCENT else ""))
    flushes = [row["value"] for row in bench.results.rows if row["section"] == "disk"]
    if flushes:
        header.append(f"disk cache flush (one fdatasync, p50 of {FLUSH_PROBES}) before the"
                      f" blocks: {min(flushes):.2f} to {max(flushes):.2f} ms,"
                      f" median {statistics.median(flushes):.2f}")
    print_report(bench, header)
    csv_path = o.csv
    if csv_path is None and not o.quick and not interrupted:
        csv_path = BENCH_DIR / f"results-{started:%Y-%m-%d}.csv"
    if csv_path is not None:
        bench.results.write_csv(csv_path, header)
        print(f"CSV: {csv_path}")
    if interrupted:
        return 130
    return 1 if bench.results.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
