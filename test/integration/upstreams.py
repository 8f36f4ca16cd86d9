"""Upstream SMTP servers for the relay tests (aiosmtpd, 127.0.0.1 only).

  ScriptedUpstream(security="none"|"starttls"|"ssl", cert=ServerCert,
                   users={login: password}, mechanisms=("PLAIN", "LOGIN"),
                   pipelining=False)
        a real SMTP server that the relay talks to:
          none       plain SMTP, STARTTLS not offered
          starttls   STARTTLS offered and required before MAIL
          ssl        implicit TLS from the first byte
        With users it offers AUTH (the given mechanisms only; with starttls
        only after STARTTLS) and requires a login before MAIL;
        without users it offers no AUTH at all.
        With pipelining it offers PIPELINING (RFC 2920) in its EHLO reply;
        aiosmtpd itself does not, although it reads commands sent ahead.

  What it can be told (per attempt, the last entry of a script repeats):
        rcpt_script   {address: ["450 ...", "250 ..."]} the n-th RCPT TO of
                      that address gets the n-th reply ("250 ..." accepts)
        data_script   ["451 ...", "250 ..."] the n-th DATA gets the n-th reply
        stall_data    seconds to sit on a complete DATA before answering it
                      (release() ends every stall at once)
        on_connect    a callable(Connection) run at the first EHLO of each
                      connection, before the reply (keep it quick)
        idle_timeout  (constructor) seconds a connection may sit idle before
                      the server drops it (aiosmtpd's timeout, 300 by default)
        the plain rcpt_replies / data_reply of helpers.Upstream still work

  What it records:
        connections   each connection that said EHLO (or AUTH, MAIL): its
                      EHLO names, TLS, logins, transactions, whether the
                      client said QUIT and when the connection ended; a
                      connection that never got that far (a port probe) is
                      not one
        transactions  every MAIL FROM, with each RCPT and its reply, and the
                      content and reply of its DATA if DATA completed, and
                      the bytes the client had sent ahead of the reply to
                      its MAIL FROM (ahead: pipelined commands)
        messages / attempts / wait_for_messages() as in helpers.Upstream

  server_tls_context(certfile, keyfile)   an ssl.SSLContext for a server
"""

import asyncio
import ssl
import threading
import time
import warnings
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

import helpers
from helpers import LOCALHOST, Received, wait_until

SECURITIES = ("none", "starttls", "ssl")
MECHANISMS = ("PLAIN", "LOGIN")     # the ones aiosmtpd implements
STALL_STEP = 0.05                   # seconds between two looks at release()
ACCEPT_RCPT = "250 2.1.5 Ok"
ACCEPT_DATA = "250 2.0.0 Ok: delivered"


def server_tls_context(certfile, keyfile):
    """server_tls_context - TLS 1.2+ server side with one certificate"""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(certfile), str(keyfile))
    return ctx


def _cert_files(cert):
    """_cert_files - (certfile, keyfile) of a tlsca.ServerCert or a pair"""
    if hasattr(cert, "key"):
        return cert.cert, cert.key
    return tuple(cert)


# ---------------------------------------------------------------- records

@dataclass
class Transaction:
    """One MAIL FROM and what followed it on the same connection."""
    connection: "Connection"
    mail_from: str
    mail_options: list
    at: float                       # time.time() of MAIL FROM
    tls: bool                       # the connection was encrypted then
    authenticated: bool             # and logged in
    rcpts: list = field(default_factory=list)  # [(address, reply)]
    content: bytes = None           # None: DATA never completed
    reply: str = ""                 # the reply to the completed DATA
    ahead: bytes = b""              # sent before MAIL FROM was answered

    @property
    def rcpt_addresses(self):
        return [a for a, _ in self.rcpts]

    @property
    def accepted(self):
        return [a for a, r in self.rcpts if r.startswith("2")]

    @property
    def delivered(self):
        return self.content is not None and self.reply.startswith("2")


@dataclass
class Connection:
    """One TCP connection that spoke SMTP to the upstream."""
    number: int
    peer: tuple
    opened: float                   # time.time() of the TCP connection
    ehlos: list = field(default_factory=list)
    tls: bool = False               # STARTTLS done, or implicit TLS
    logins: list = field(default_factory=list)  # [(mechanism, login, ok)]
    transactions: list = field(default_factory=list)
    quit: bool = False              # the client said QUIT
    closed: float = None            # time.time() the connection ended

    @property
    def good_logins(self):
        return [(m, l) for m, l, ok in self.logins if ok]

    @property
    def messages(self):
        return [t for t in self.transactions if t.delivered]


# ---------------------------------------------------------------- server side

def _encrypted(server):
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


class _TimedSMTP(SMTP):
    """aiosmtpd's SMTP that remembers when its TCP connection came."""

    def connection_made(self, transport):
        if getattr(self, "_upstream_opened", None) is None:
            self._upstream_opened = time.time()
        super().connection_made(transport)

    def connection_lost(self, exc):
        conn = getattr(self, "_upstream_connection", None)
        if conn is not None and conn.closed is None:
            conn.closed = time.time()
        super().connection_lost(exc)


class _Controller(Controller):
    def factory(self):
        # A login without STARTTLS is what the none and ssl upstreams are
        # for; aiosmtpd warns about it on every connection.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return _TimedSMTP(self.handler, **self.SMTP_kwargs)


class _ScriptedHandler:
    """aiosmtpd hooks: answer as the ScriptedUpstream says, record everything."""

    def __init__(self, upstream):
        self.up = upstream

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        conn = self.up._connection(server)
        conn.ehlos.append(hostname)
        if len(conn.ehlos) == 1 and self.up.on_connect is not None:
            self.up.on_connect(conn)
        conn.tls = _encrypted(server)
        if not self.up.users:
            responses = [r for r in responses if not r[4:].upper().startswith("AUTH")]
        if self.up.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_QUIT(self, server, session, envelope):
        self.up._connection(server).quit = True
        return "221 2.0.0 Bye"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        conn = self.up._connection(server)
        # what the client wrote after MAIL FROM without waiting for this
        # reply is in the server's read buffer now
        ahead = bytes(getattr(server._reader, "_buffer", b""))
        record = Transaction(connection=conn, mail_from=address,
            mail_options=list(mail_options), at=time.time(),
            tls=_encrypted(server), authenticated=bool(session.authenticated),
            ahead=ahead)
        self.up._add_transaction(conn, record)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.upstream_record = record
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.up._rcpt_reply(address)
        record = getattr(envelope, "upstream_record", None)
        if record is not None:
            with self.up._lock:
                record.rcpts.append((address, reply))
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return reply

    async def handle_DATA(self, server, session, envelope):
        reply = self.up._data_reply()
        await self.up._stall()
        record = getattr(envelope, "upstream_record", None)
        if record is not None:
            with self.up._lock:
                record.content = bytes(envelope.original_content)
                record.reply = reply
        self.up._record(Received(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            content=bytes(envelope.original_content),
            ehlo=session.host_name,
            mail_options=list(envelope.mail_options),
            peer=session.peer,
            reply=reply,
        ))
        return reply


# ---------------------------------------------------------------- the upstream

class ScriptedUpstream(helpers.Upstream):
    """An aiosmtpd upstream with TLS modes, AUTH, scripts and records."""

    def __init__(self, security="none", cert=None, users=None,
            mechanisms=MECHANISMS, hostname="upstream.test", port=None,
            idle_timeout=None, pipelining=False):
        assert security in SECURITIES, security
        assert security == "none" or cert is not None, "TLS needs cert="
        assert set(mechanisms) <= set(MECHANISMS), mechanisms
        super().__init__(port=port, hostname=hostname)
        self.security = security
        self.cert = cert
        self.users = dict(users or {})
        self.mechanisms = tuple(mechanisms)
        self.idle_timeout = idle_timeout
        self.pipelining = pipelining
        self.rcpt_script = {}
        self.data_script = []
        self.stall_data = 0.0
        self.on_connect = None
        self.stalls = 0                 # DATA replies held back so far
        self._rcpt_counts = {}
        self._data_count = 0
        self._connections = []
        self._transactions = []
        self._released = threading.Event()

    # -- life cycle

    def _start_once(self):
        kwargs = {}
        if self.idle_timeout is not None:
            kwargs["timeout"] = self.idle_timeout
        if self.security != "none":
            context = server_tls_context(*_cert_files(self.cert))
            if self.security == "ssl":
                kwargs["ssl_context"] = context
            else:
                kwargs["tls_context"] = context
                kwargs["require_starttls"] = True
        if self.users:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
            # aiosmtpd counts only STARTTLS as TLS: implicit TLS would
            # never see AUTH offered.
            kwargs["auth_require_tls"] = self.security == "starttls"
            kwargs["auth_exclude_mechanism"] = [m for m in MECHANISMS
                if m not in self.mechanisms]
        controller = _Controller(
            _ScriptedHandler(self),
            hostname=LOCALHOST,
            port=self.port,
            server_hostname=self.hostname,
            decode_data=False,
            ready_timeout=5.0,
            **kwargs,
        )
        controller.start()
        self._controller = controller

    def stop(self):
        """stop - end any stall, close the port"""
        self._released.set()
        super().stop()
        self._released.clear()

    # -- the script

    def _rcpt_reply(self, address):
        key = address.lower()
        with self._lock:
            n = self._rcpt_counts.get(key, 0)
            self._rcpt_counts[key] = n + 1
            script = self.rcpt_script.get(key) or self.rcpt_script.get(address)
        if script:
            return script[min(n, len(script) - 1)]
        return self.rcpt_replies.get(key) or ACCEPT_RCPT

    def _data_reply(self):
        with self._lock:
            n = self._data_count
            self._data_count += 1
            script = list(self.data_script)
        if script:
            return script[min(n, len(script) - 1)]
        return self.data_reply or ACCEPT_DATA

    async def _stall(self):
        if self.stall_data <= 0:
            return
        with self._lock:
            self.stalls += 1
        deadline = time.monotonic() + self.stall_data
        while time.monotonic() < deadline and not self._released.is_set():
            await asyncio.sleep(STALL_STEP)

    def release(self):
        """release - answer every DATA held by stall_data now, stall no more"""
        self.stall_data = 0.0
        self._released.set()

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        login = password = None
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
        ok = login is not None and login in self.users and self.users[login] == password
        conn = self._connection(server)
        with self._lock:
            conn.logins.append((mechanism, login, ok))
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    # -- records

    def _connection(self, server):
        conn = getattr(server, "_upstream_connection", None)
        if conn is None:
            with self._lock:
                conn = Connection(number=len(self._connections) + 1,
                    peer=server.session.peer if server.session else None,
                    opened=getattr(server, "_upstream_opened", None) or time.time())
                self._connections.append(conn)
            server._upstream_connection = conn
        return conn

    def _add_transaction(self, conn, record):
        with self._lock:
            conn.transactions.append(record)
            self._transactions.append(record)

    @property
    def connections(self):
        with self._lock:
            return list(self._connections)

    @property
    def transactions(self):
        with self._lock:
            return list(self._transactions)

    @property
    def logins(self):
        """logins - (mechanism, login, ok) of every AUTH, in order"""
        return [l for c in self.connections for l in c.logins]

    def wait_for_transactions(self, count=1, timeout=5.0):
        """wait_for_transactions - the first count MAIL FROMs, whatever came after"""
        return self.wait_for_records("transactions", count, timeout,
            "MAIL FROM(s)")

    def wait_for_connections(self, count=1, timeout=5.0):
        """wait_for_connections - the first count connections (see connections)"""
        return self.wait_for_records("connections", count, timeout,
            "SMTP connection(s)")

    def wait_for_closed(self, connection, timeout=5.0):
        """wait_for_closed - until that connection (a Connection) has ended"""
        return wait_until(lambda: connection.closed, timeout,
            f"connection {connection.number} to the upstream on port "
            f"{self.port} to end")

    def wait_for_stall(self, timeout=5.0):
        """wait_for_stall - until a DATA is being held back"""
        return wait_until(lambda: self.stalls > 0, timeout,
            f"a DATA held back at the upstream on port {self.port}")
