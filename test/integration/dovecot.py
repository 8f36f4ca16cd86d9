"""A real Dovecot POP3 server for the POP-before-SMTP tests.

  Dovecot(directory, user=, password=, cert=, key=, plain=True)
                         one `dovecot -F -c CONF` process with everything of
                         its own in directory (config, base_dir, state_dir,
                         passwd-file, log), one test user, listening on free
                         127.0.0.1 ports: pop3s (implicit TLS, with cert and
                         key) and/or plain pop3.
    start()              run it and wait until every port greets
    stop()               SIGTERM to its PID, SIGKILL of its process group if
                         it lingers; also the end of a `with` block
    pop3s_port, pop3_port, user, password, log_path
    logins(user=None, start=0)    the "Login: user=<...>" lines of its log
    failures(user=None, start=0)  the "(auth failed, ...)" lines
    log_offset()         where the log ends now: pass it as start= to see
                         only what happens after this point
    wait_for_logins(count, timeout, user=None, start=0)
    set_password(new)    the user's password from now on (no restart;
                         takes about a second, see there)

Certificates come from tlsca (a test CA made with openssl).  Typical use
in a test (tmp_path from pytest):

    ca = tlsca.make_ca(tmp_path / "ca")
    srv = tlsca.make_server_cert(ca, ["localhost", "127.0.0.1"], tmp_path)
    with dovecot.Dovecot(tmp_path / "dovecot", cert=srv.cert, key=srv.key) as pop:
        # account: pophost=127.0.0.1, popport=pop.pop3s_port, popssl=true,
        #          popusername=pop.user, poppassword=pop.password,
        #          tlscafile=ca.cert
        ...
        pop.wait_for_logins(1)

Dovecot logs a successful login as "pop3-login: Info: Login: user=<popuser>,
method=PLAIN, rip=127.0.0.1, ..., TLS, ..." ("secured" instead of "TLS" on
the plain port from 127.0.0.1) and a refused one as "Disconnected: ...
(auth failed, 1 attempts in 0 secs): user=<popuser>, ...", with
"passwd-file(popuser,...): Password mismatch" from auth before it.  The log
is written by a Dovecot process of its own: a line can appear a moment
after the client saw the reply (wait_for_logins() polls).

Nothing is written outside directory, except, when run as root, a mail
folder under the system temp folder (see Dovecot), removed by stop().
Everything listens on 127.0.0.1 only and every wait is bounded.
"""

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import helpers

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

START_TIMEOUT = 10.0        # from exec to both ports greeting
STOP_TIMEOUT = 10.0         # from SIGTERM to the master's exit
GREETING_TIMEOUT = 2.0      # one probe of a port
PASSWD_SETTLE = 1.1         # Dovecot looks at passwd-file once a second

LOGIN_RE = re.compile(r"pop3-login: Info: Login: user=<([^>]*)>.*")
FAILED_RE = re.compile(r"pop3-login: Info: .*\(auth failed.*user=<([^>]*)>.*")
BIND_FAILED = "Address already in use"


# ---------------------------------------------------------------- dovecot

def _account_ids(name):
    """_account_ids - (uid, gid) of a user name, or None"""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid


class Dovecot:
    """One Dovecot POP3 server of a test.

    directory   where its files go (created); its log is directory/dovecot.log
    user, password   the one account (no ':' or newline in either)
    cert, key   PEM files for pop3s; both None: no pop3s listener
    plain       also a plain pop3 listener
    pop3s_port, pop3_port   fixed ports, or None for free ones

    Run as root, Dovecot will not let a login process be root (it uses
    dovenull) nor a mail process (it uses the "dovecot" user, else nobody);
    its internal processes (auth, which reads the passwd-file) stay root.
    The mail user cannot reach a folder under a test's 0700 tmp_path: the
    user's (empty) maildir then lives in a folder of its own under the
    system temp folder, made for that user and removed by stop().  Run as
    another user, every process is that user and the maildir is in
    directory.
    """

    def __init__(self, directory, user="popuser", password="poppass",
                 cert=None, key=None, plain=True, pop3s_port=None,
                 pop3_port=None):
        if (cert is None) != (key is None):
            raise ValueError("cert and key go together")
        if cert is None and not plain:
            raise ValueError("neither pop3s nor plain pop3")
        for value in (user, password):
            if ":" in value or "\n" in value:
                raise ValueError("no ':' or newline in user or password")
        self.directory = Path(directory).resolve()
        self.user = user
        self.password = password
        self.cert = Path(cert).resolve() if cert is not None else None
        self.key = Path(key).resolve() if key is not None else None
        self.plain = plain
        self._fixed_ports = (pop3s_port, pop3_port)
        self.pop3s_port = None
        self.pop3_port = None
        self.config_path = self.directory / "dovecot.conf"
        self.log_path = self.directory / "dovecot.log"
        self.passwd_path = self.directory / "passwd"
        self.proc = None
        self._mail_dir = None
        self._own_mail_dir = False

    # ------------------------------------------------------------ files

    def _users(self):
        """_users - (internal user, login user, mail uid, mail gid)"""
        if os.geteuid() != 0:
            name = pwd.getpwuid(os.geteuid()).pw_name
            return name, name, os.geteuid(), os.getegid()
        login = "dovenull" if _account_ids("dovenull") else "nobody"
        mail = _account_ids("dovecot") or _account_ids("nobody")
        return "root", login, mail[0], mail[1]

    @staticmethod
    def _internal_group():
        """_internal_group - a config line when Dovecot's default won't do"""
        if os.geteuid() == 0:
            return ""
        # not root: no chown to the "dovecot" group; stay in our own
        return f"default_internal_group = {grp.getgrgid(os.getegid()).gr_name}\n"

    def _make_mail_dir(self, uid, gid):
        """_make_mail_dir - a folder the mail process can reach and write"""
        if os.geteuid() != 0:
            self._mail_dir = self.directory / "mail"
            self._mail_dir.mkdir(exist_ok=True)
            return
        self._mail_dir = Path(tempfile.mkdtemp(prefix="smtpproxy-dovecot-"))
        self._own_mail_dir = True
        os.chown(self._mail_dir, uid, gid)

    def _write_passwd(self):
        """_write_passwd - the passdb: one user, password in {PLAIN}"""
        tmp = self.passwd_path.with_suffix(".tmp")
        tmp.write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.passwd_path)

    def _write_config(self):
        """_write_config - a dovecot.conf that touches only its own files"""
        internal, login, uid, gid = self._users()
        d = self.directory
        listeners = []
        if self.cert is not None:
            listeners.append("  inet_listener pop3s {\n"
                             f"    port = {self.pop3s_port}\n"
                             "    ssl = yes\n  }")
        else:
            listeners.append("  inet_listener pop3s {\n    port = 0\n  }")
        listeners.append("  inet_listener pop3 {\n"
                         f"    port = {self.pop3_port if self.plain else 0}\n  }}")
        # chroot needs root; without it the login processes run unjailed
        chroot = "  chroot =\n" if os.geteuid() != 0 else ""
        tls = ("ssl = yes\n"
               f"ssl_cert = <{self.cert}\n"
               f"ssl_key = <{self.key}\n") if self.cert is not None else "ssl = no\n"
        self.config_path.write_text(f"""\
# Written by test/integration/dovecot.py for one test.
instance_name = smtpproxy-test-{os.getpid()}-{id(self):x}
base_dir = {d}/run
state_dir = {d}/state
protocols = pop3
listen = 127.0.0.1
shutdown_clients = yes

log_path = {self.log_path}
info_log_path = {self.log_path}
auth_verbose = yes

default_internal_user = {internal}
default_login_user = {login}
{self._internal_group()}first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}

{tls}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
auth_cache_size = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd_path}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={self._mail_dir}/%u
}}
mail_location = maildir:{self._mail_dir}/%u

service pop3-login {{
{chroot}{chr(10).join(listeners)}
}}
# no growing delays after the failed logins a test makes on purpose
service anvil {{
{chroot}  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
""")

    # ------------------------------------------------------------ process

    def start(self):
        """start - run Dovecot on free ports (or the fixed ones), wait for it"""
        self.directory.mkdir(parents=True, exist_ok=True)
        for sub in ("run", "state"):
            (self.directory / sub).mkdir(exist_ok=True)
        _, _, uid, gid = self._users()
        if self._mail_dir is None:
            self._make_mail_dir(uid, gid)
        self._write_passwd()
        fixed = any(p is not None for p in self._fixed_ports)
        tries = 1 if fixed else helpers.PORT_TRIES
        for attempt in range(tries):
            # a listener not asked for has no port (None)
            self.pop3s_port = (self._fixed_ports[0] or helpers.free_port()
                               if self.cert is not None else None)
            self.pop3_port = (self._fixed_ports[1] or helpers.free_port()
                              if self.plain else None)
            self._write_config()
            if self._start_once() or attempt + 1 == tries:
                return self
        return self

    def _start_once(self):
        """_start_once - one try; False when a port was taken meanwhile"""
        offset = self._log_size()
        with open(self.directory / "dovecot.stderr", "ab") as stderr:
            self.proc = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=stderr, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = self.log_text(offset) + self._stderr_text()
                self.proc = None
                if BIND_FAILED in text:
                    return False
                raise AssertionError(f"dovecot exited at start:\n{text}")
            if all(self._greets(port, tls) for port, tls in self._ports()):
                return True
            time.sleep(helpers.POLL_INTERVAL)
        self.stop()
        raise AssertionError(f"dovecot did not greet within {START_TIMEOUT:g} s:\n"
                             + self.log_text(offset))

    def _ports(self):
        """_ports - (port, tls) of every listener"""
        ports = []
        if self.cert is not None:
            ports.append((self.pop3s_port, True))
        if self.plain:
            ports.append((self.pop3_port, False))
        return ports

    @staticmethod
    def _greets(port, tls):
        """_greets - whether a listener answers with "+OK" now"""
        try:
            with socket.create_connection((helpers.LOCALHOST, port),
                                          timeout=GREETING_TIMEOUT) as sock:
                if tls:
                    ctx = ssl.create_default_context()
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                    with ctx.wrap_socket(sock) as tsock:
                        return tsock.recv(512).startswith(b"+OK")
                return sock.recv(512).startswith(b"+OK")
        except (OSError, ssl.SSLError):
            return False

    def stop(self, timeout=STOP_TIMEOUT):
        """stop - SIGTERM to the master, SIGKILL to its group if it lingers"""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout)
        if self._own_mail_dir and self._mail_dir is not None:
            shutil.rmtree(self._mail_dir, ignore_errors=True)
            self._mail_dir = None
            self._own_mail_dir = False

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------ account

    def set_password(self, password):
        """set_password - the user's password from now on (no restart)

        Dovecot reads passwd-file again when its mtime (in seconds) or
        size changed, checking at most once a second: this makes sure the
        file looks changed, then waits that second out.
        """
        if ":" in password or "\n" in password:
            raise ValueError("no ':' or newline in the password")
        self.password = password
        before = int(self.passwd_path.stat().st_mtime)
        self._write_passwd()
        if int(self.passwd_path.stat().st_mtime) == before:
            os.utime(self.passwd_path, (before + 1, before + 1))
        time.sleep(PASSWD_SETTLE)

    # ------------------------------------------------------------ log

    def _log_size(self):
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _stderr_text(self):
        try:
            return (self.directory / "dovecot.stderr").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_text(self, start=0):
        """log_text - Dovecot's log from byte offset start"""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(start)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def logins(self, user=None, start=0):
        """logins - the successful "Login: user=<...>" lines, oldest first

        user: only that user's; start: a log offset (log_offset()) to count
        only what happened after it.
        """
        lines = []
        for line in self.log_text(start).splitlines():
            m = LOGIN_RE.search(line)
            if m and (user is None or m.group(1) == user):
                lines.append(m.group(0))
        return lines

    def failures(self, user=None, start=0):
        """failures - the "auth failed" disconnect lines, oldest first"""
        lines = []
        for line in self.log_text(start).splitlines():
            m = FAILED_RE.search(line)
            if m and (user is None or m.group(1) == user):
                lines.append(m.group(0))
        return lines

    def log_offset(self):
        """log_offset - where the log ends now, for logins(start=...)"""
        return self._log_size()

    def wait_for_logins(self, count=1, timeout=5.0, user=None, start=0):
        """wait_for_logins - until at least count logins are in the log"""
        def enough():
            found = self.logins(user, start)
            return found if len(found) >= count else None
        return helpers.wait_until(enough, timeout, f"{count} POP login(s)")
