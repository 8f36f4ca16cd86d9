"""A fake OAuth 2.0 provider and an XOAUTH2 upstream for the OAuth tests
(127.0.0.1 only, certificates from tlsca).

  TokenServer(cert, client_id=..., client_secret=...)
        HTTPS token endpoint and friends:
          POST /token        grant_type refresh_token (rotates the refresh
                             token: the old one is invalid_grant from then
                             on), authorization_code (checks redirect_uri
                             and the PKCE S256 verifier),
                             urn:ietf:params:oauth:grant-type:device_code
                             (authorization_pending until approved),
                             client_credentials (checks the secret)
          POST /devicecode   a device code and a user code
          POST /approve      user_code=...: the user logged in
          GET  /authorize    the login page: answers 302 to redirect_uri
                             with code and state at once
        What it can be told:
          fail               a list of injected answers, taken one per
                             token request: "invalid_grant", "slow_down",
                             "expired_token", 500 (an int is an HTTP status)
          delay              seconds to sit on each refresh grant
          access_size        length of the access tokens it issues
          expires_in         lifetime it announces
          interval           device-code polling interval it announces
        What it records: requests [(path, grant_type, time)], every token
        issued (issued_access, issued_refresh), count(grant_type).
        issue() registers a fresh pair for tests that write the token file
        themselves; revoke(token) makes an access token stale;
        token_ok(token) is what the upstream asks.

  XOAuth2Upstream(cert, tokens, users)
        an aiosmtpd server (helpers.Upstream: messages, wait_for_messages)
        requiring STARTTLS, offering AUTH XOAUTH2 only after it, refusing
        AUTH command lines over 512 octets (aiosmtpd's limit, like Gmail),
        checking user= against users and the token against tokens; a stale
        token gets the RFC 7628 error challenge, then 535.
          reject_with   a reply given to every login instead (a tenant
                        with SMTP AUTH disabled: "535 5.7.139 ...")
          logins        [(user, token, ok, initial_response)]
          connections   the number of connections that said EHLO
"""

import base64
import hashlib
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

import helpers
from helpers import LOCALHOST, Received

GRANT_DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
CHALLENGE = {"status": "401", "schemes": "Bearer", "scope": "https://mail.google.com/"}
LONG_LINE = 65536        # the token line after "334 " can be this long


def server_context(cert):
    """server_context - TLS 1.2+ server side with a tlsca.ServerCert"""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert.cert), str(cert.key))
    return ctx


def s256(verifier):
    """s256 - the PKCE S256 challenge of a verifier (RFC 7636)"""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# ---------------------------------------------------------------- token endpoint

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _reply(self, status, body=None, headers=()):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _form(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("ascii")
        return {k: v[0] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}

    def do_POST(self):
        fake = self.server.fake
        path = urllib.parse.urlsplit(self.path).path
        form = self._form()
        if path == "/token":
            status, body = fake._token(form)
        elif path == "/devicecode":
            status, body = fake._devicecode(form)
        elif path == "/approve":
            status, body = fake._approve(form)
        else:
            status, body = 404, {"error": "not_found"}
        self._reply(status, body)

    def do_GET(self):
        fake = self.server.fake
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/authorize":
            return self._reply(404, {"error": "not_found"})
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        status, location = fake._authorize(query)
        if status == 302:
            return self._reply(302, None, [("Location", location)])
        return self._reply(status, {"error": location})


class TokenServer:
    """A fake OAuth 2.0 provider over HTTPS on 127.0.0.1."""

    def __init__(self, cert, client_id="smtpproxy-test-client",
            client_secret="client-Secret-9f3e", scope="https://mail.example/send"):
        self.cert = cert
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.fail = []
        self.delay = 0.0
        self.access_size = 48
        self.expires_in = 3600
        self.interval = 1
        self.requests = []
        self.issued_access = []
        self.issued_refresh = []
        self._lock = threading.Lock()
        self._access = set()
        self._refresh = set()
        self._devices = {}      # device_code -> {"user_code", "approved"}
        self._codes = {}        # code -> {"challenge", "redirect_uri"}
        self._httpd = None
        self._thread = None
        self.port = None

    # -- life cycle

    def start(self):
        httpd = ThreadingHTTPServer((LOCALHOST, 0), _Handler)
        httpd.daemon_threads = True
        httpd.socket = server_context(self.cert).wrap_socket(httpd.socket, server_side=True)
        httpd.fake = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def url(self, path):
        return f"https://{LOCALHOST}:{self.port}{path}"

    # -- what the tests use

    def issue(self, refresh=True):
        """issue - a new (access, refresh) pair, both valid"""
        with self._lock:
            return self._new_access(), (self._new_refresh() if refresh else None)

    def revoke(self, token):
        """revoke - the access token is stale from now on"""
        with self._lock:
            self._access.discard(token)

    def token_ok(self, token):
        with self._lock:
            return token in self._access

    def count(self, grant_type):
        """count - token requests of that grant type so far"""
        with self._lock:
            return sum(1 for _, g, _ in self.requests if g == grant_type)

    def user_code_approve(self, user_code):
        """user_code_approve - as if the user had logged in"""
        with self._lock:
            for dev in self._devices.values():
                if dev["user_code"] == user_code:
                    dev["approved"] = True
                    return True
        return False

    # -- internals (called under no lock by the HTTP threads)

    def _new_access(self):
        token = secrets.token_urlsafe(self.access_size)[:self.access_size]
        self._access.add(token)
        self.issued_access.append(token)
        return token

    def _new_refresh(self):
        token = "rt." + secrets.token_urlsafe(24)
        self._refresh.add(token)
        self.issued_refresh.append(token)
        return token

    def _grant(self, refresh=True, scope=None):
        body = {"token_type": "Bearer", "expires_in": self.expires_in,
            "scope": scope or self.scope, "access_token": self._new_access()}
        if refresh:
            body["refresh_token"] = self._new_refresh()
        return 200, body

    def _client_ok(self, form, secret_required=False):
        if form.get("client_id") != self.client_id:
            return False
        if "client_secret" in form or secret_required:
            return form.get("client_secret") == self.client_secret
        return True

    def _token(self, form):
        grant = form.get("grant_type", "")
        with self._lock:
            self.requests.append(("/token", grant, time.time()))
            injected = self.fail.pop(0) if self.fail else None
        if grant == "refresh_token" and self.delay:
            time.sleep(self.delay)
        if isinstance(injected, int):
            return injected, {"error": "server_error"}
        if injected is not None:
            return 400, {"error": injected, "error_description": f"injected {injected}"}
        with self._lock:
            if grant == "refresh_token":
                if not self._client_ok(form):
                    return 401, {"error": "invalid_client"}
                old = form.get("refresh_token")
                if old not in self._refresh:
                    return 400, {"error": "invalid_grant",
                        "error_description": "AADSTS70008: The refresh token has expired"}
                self._refresh.discard(old)
                return self._grant()
            if grant == GRANT_DEVICE:
                if not self._client_ok(form):
                    return 401, {"error": "invalid_client"}
                dev = self._devices.get(form.get("device_code"))
                if dev is None:
                    return 400, {"error": "invalid_grant"}
                if not dev["approved"]:
                    return 400, {"error": "authorization_pending"}
                del self._devices[form["device_code"]]
                return self._grant()
            if grant == "authorization_code":
                if not self._client_ok(form):
                    return 401, {"error": "invalid_client"}
                entry = self._codes.pop(form.get("code"), None)
                if entry is None or entry["redirect_uri"] != form.get("redirect_uri"):
                    return 400, {"error": "invalid_grant", "error_description": "bad code"}
                if s256(form.get("code_verifier", "")) != entry["challenge"]:
                    return 400, {"error": "invalid_grant", "error_description": "PKCE failed"}
                return self._grant()
            if grant == "client_credentials":
                if not self._client_ok(form, secret_required=True):
                    return 401, {"error": "invalid_client",
                        "error_description": "AADSTS7000215: Invalid client secret"}
                return self._grant(refresh=False, scope=form.get("scope"))
        return 400, {"error": "unsupported_grant_type"}

    def _devicecode(self, form):
        with self._lock:
            self.requests.append(("/devicecode", None, time.time()))
            if form.get("client_id") != self.client_id:
                return 400, {"error": "invalid_client"}
            device_code = secrets.token_urlsafe(32)
            user_code = "-".join(secrets.token_hex(2).upper() for _ in range(2))
            self._devices[device_code] = {"user_code": user_code, "approved": False}
        return 200, {"device_code": device_code, "user_code": user_code,
            "verification_uri": self.url("/device"), "expires_in": 600,
            "interval": self.interval,
            "message": f"To sign in, open {self.url('/device')} and enter {user_code}"}

    def _approve(self, form):
        if self.user_code_approve(form.get("user_code", "")):
            return 200, {"approved": True}
        return 404, {"error": "no such code"}

    def _authorize(self, q):
        with self._lock:
            self.requests.append(("/authorize", None, time.time()))
        if q.get("client_id") != self.client_id or q.get("response_type") != "code":
            return 400, "invalid_request"
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return 400, "PKCE S256 required"
        redirect = q.get("redirect_uri", "")
        if not (redirect.startswith("http://127.0.0.1:") or redirect.startswith("http://localhost:")):
            return 400, "redirect_uri must be loopback"
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = {"challenge": q["code_challenge"], "redirect_uri": redirect}
        query = urllib.parse.urlencode({"code": code, "state": q.get("state", "")})
        return 302, f"{redirect}?{query}"


# ---------------------------------------------------------------- XOAUTH2 upstream

class _LongLineSMTP(SMTP):
    """aiosmtpd's SMTP reading a token line of up to LONG_LINE after 334;
    command lines stay limited to 512 octets (command_size_limit)."""
    line_length_limit = LONG_LINE


class _XOAuth2Controller(Controller):
    def factory(self):
        return _LongLineSMTP(self.handler, **self.SMTP_kwargs)


def _split_sasl(blob):
    """_split_sasl - (user, token) of "user=U^Aauth=Bearer T^A^A", or None"""
    try:
        text = blob.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not text.endswith("\x01\x01"):
        return None
    parts = dict(p.split("=", 1) for p in text[:-2].split("\x01") if "=" in p)
    auth = parts.get("auth", "")
    if "user" not in parts or not auth.startswith("Bearer "):
        return None
    return parts["user"], auth[len("Bearer "):]


class _XOAuth2Handler:
    def __init__(self, upstream):
        self.up = upstream

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if not getattr(server, "_xo_counted", False):
            server._xo_counted = True
            with self.up._lock:
                self.up.connections += 1
        return responses

    async def auth_XOAUTH2(self, server, args):
        initial = len(args) == 2
        if initial:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except ValueError:
                await server.push("501 5.5.2 Cannot decode base64")
                return AuthResult(success=False, handled=True)
        else:
            blob = await server.challenge_auth("", encode_to_b64=False)
            if not isinstance(blob, bytes):
                return AuthResult(success=False, handled=True)
        parsed = _split_sasl(blob)
        if parsed is None:
            await server.push("501 5.5.2 Malformed XOAUTH2 response")
            return AuthResult(success=False, handled=True)
        user, token = parsed
        ok = user in self.up.users and self.up.tokens.token_ok(token)
        if self.up.reject_with:
            ok = False
        with self.up._lock:
            self.up.logins.append((user, token, ok, initial))
        if ok:
            return AuthResult(success=True, auth_data=user)
        if self.up.reject_with:
            return AuthResult(success=False, handled=False, message=self.up.reject_with)
        # RFC 7628 3.2.2: the error as a challenge; the client answers empty
        await server.challenge_auth(json.dumps(CHALLENGE))
        return AuthResult(success=False, handled=False,
            message="535 5.7.8 Username and Password not accepted")

    async def handle_DATA(self, server, session, envelope):
        reply = "250 2.0.0 Ok: delivered"
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


class XOAuth2Upstream(helpers.Upstream):
    """STARTTLS, then AUTH XOAUTH2 checked against a TokenServer."""

    def __init__(self, cert, tokens, users, hostname="xoauth2.test"):
        super().__init__(hostname=hostname)
        self.cert = cert
        self.tokens = tokens
        self.users = set(users)
        self.reject_with = None
        self.logins = []
        self.connections = 0

    def _start_once(self):
        controller = _XOAuth2Controller(
            _XOAuth2Handler(self),
            hostname=LOCALHOST,
            port=self.port,
            server_hostname=self.hostname,
            decode_data=False,
            ready_timeout=5.0,
            tls_context=server_context(self.cert),
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            auth_exclude_mechanism=["PLAIN", "LOGIN"],
        )
        controller.start()
        self._controller = controller

    @property
    def good_logins(self):
        with self._lock:
            return [l for l in self.logins if l[2]]
