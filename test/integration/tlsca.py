"""A throw-away certificate authority for the tests, made with openssl(1).

Nothing here is kept between runs: every key and certificate is made at
test time in a folder the caller gives (a pytest tmp dir).

  make_ca(folder, name)                 a self-signed CA: CA(cert, key);
                                        cert is the ca.pem clients trust
  make_server_cert(ca, names, folder)   a server certificate signed by ca
                                        for names (DNS names and IP
                                        addresses, the first is the CN):
                                        ServerCert(cert, key, chain)
  make_untrusted_server_cert(folder, names)
                                        the same, signed by a fresh CA that
                                        nobody trusts (its CA is returned
                                        in .ca, for completeness)
  make_wrong_host_cert(ca, folder)      signed by ca, but for a host name
                                        that is none of the test's

LOCAL_NAMES are the names a client on this machine may use for the
daemon: localhost, 127.0.0.1 and ::1.

Keys are EC P-256 (fast to make), unencrypted, mode 0600.  Certificates
carry the extensions strict verifiers ask for (basic constraints, key
usage, subject and authority key identifiers, extended key usage), so they
pass OpenSSL's and Python's X509 strict checks.

A session-scoped fixture is the intended use:

    @pytest.fixture(scope="session")
    def test_ca(tmp_path_factory):
        return tlsca.make_ca(tmp_path_factory.mktemp("ca"))
"""

import ipaddress
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
WRONG_HOST = "wrong-host.invalid"
VALID_DAYS = 2
OPENSSL_TIMEOUT = 20.0      # seconds for one openssl command


@dataclass(frozen=True)
class CA:
    cert: Path          # ca.pem: what clients are told to trust
    key: Path
    name: str


@dataclass(frozen=True)
class ServerCert:
    cert: Path          # the leaf certificate (PEM)
    key: Path           # its private key (PEM, unencrypted)
    chain: Path         # leaf followed by the CA certificate
    names: tuple
    ca: CA


# Our own openssl.cnf, so that the system's (and its default extensions)
# play no part in what the certificates contain.
_REQ_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
"""

_CA_EXTENSIONS = """\
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""

_SERVER_EXTENSIONS = """\
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = {san}
"""


def _openssl(*args, cwd):
    """_openssl - run one openssl command; fail with its stderr"""
    result = subprocess.run(["openssl", *map(str, args)], cwd=cwd,
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=OPENSSL_TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed"
            f" ({result.returncode}):\n{result.stderr}")
    return result.stdout


def _new_key(path, cwd):
    """_new_key - an EC P-256 private key in PEM, readable by us only"""
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
        "ec_paramgen_curve:P-256", "-out", path, cwd=cwd)
    os.chmod(path, 0o600)


def _serial():
    return "0x" + secrets.token_hex(16)


def _subject(common_name):
    # openssl's -subj syntax: "/" and "\" in a value need a backslash.
    escaped = common_name.replace("\\", "\\\\").replace("/", "\\/")
    return "/CN=" + escaped


def _san(names):
    """_san - subjectAltName value: IP: for addresses, DNS: for the rest"""
    entries = []
    for name in names:
        try:
            entries.append(f"IP:{ipaddress.ip_address(name)}")
        except ValueError:
            entries.append(f"DNS:{name}")
    return ", ".join(entries)


def _fresh_folder(folder, stem):
    """_fresh_folder - folder/stem, or folder/stem-2, ... if that exists"""
    folder = Path(folder)
    path = folder / stem
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}"
    path.mkdir(parents=True)
    return path


def make_ca(folder, name="smtpproxy test CA"):
    """make_ca - a self-signed CA in a new folder under folder"""
    where = _fresh_folder(folder, "ca")
    (where / "req.cnf").write_text(_REQ_CONFIG + _CA_EXTENSIONS)
    key, cert = where / "ca.key", where / "ca.pem"
    _new_key(key, where)
    _openssl("req", "-config", "req.cnf", "-new", "-x509", "-key", key,
        "-subj", _subject(name), "-days", VALID_DAYS, "-sha256",
        "-set_serial", _serial(), "-extensions", "ca_ext", "-out", cert,
        cwd=where)
    return CA(cert=cert, key=key, name=name)


def make_server_cert(ca, names=LOCAL_NAMES, folder=None, stem="server"):
    """make_server_cert - key and certificate for names, signed by ca"""
    names = tuple(names)
    assert names, "a server certificate needs at least one name"
    where = _fresh_folder(folder if folder is not None else ca.cert.parent.parent,
        stem)
    (where / "req.cnf").write_text(_REQ_CONFIG)
    (where / "ext.cnf").write_text(_SERVER_EXTENSIONS.format(san=_san(names)))
    key, csr, cert = where / "server.key", where / "server.csr", where / "server.pem"
    _new_key(key, where)
    _openssl("req", "-config", "req.cnf", "-new", "-key", key,
        "-subj", _subject(names[0]), "-out", csr, cwd=where)
    _openssl("x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key,
        "-set_serial", _serial(), "-days", VALID_DAYS, "-sha256",
        "-extfile", "ext.cnf", "-extensions", "server_ext", "-out", cert,
        cwd=where)
    chain = where / "chain.pem"
    chain.write_bytes(cert.read_bytes() + ca.cert.read_bytes())
    return ServerCert(cert=cert, key=key, chain=chain, names=names, ca=ca)


def make_untrusted_server_cert(folder, names=LOCAL_NAMES):
    """make_untrusted_server_cert - right names, signed by an unknown CA"""
    stranger = make_ca(folder, name="unknown CA")
    return make_server_cert(stranger, names, folder, stem="untrusted")


def make_wrong_host_cert(ca, folder=None, name=WRONG_HOST):
    """make_wrong_host_cert - signed by ca, for a name no test connects to"""
    return make_server_cert(ca, (name,), folder, stem="wrong-host")
