"""PHPMailer, the way PHP applications (phpBB and friends) send mail,
delivering through smtpproxyd: plain SMTP to localhost as most forums are
set up, and STARTTLS with AUTH LOGIN as a careful admin would set it up.
Each message must arrive at the upstream."""

import shutil
import subprocess

import pytest

import tlsca
from helpers import LOCALHOST

AUTOLOAD = "/usr/share/php/libphp-phpmailer/autoload.php"

SCRIPT = r"""<?php
require '%(autoload)s';
use PHPMailer\PHPMailer\PHPMailer;

$m = new PHPMailer(true);
$m->isSMTP();
$m->Host = '127.0.0.1';
$m->Port = (int)$argv[1];
$m->Helo = 'forum.example.com';
$m->Timeout = 10;
if ($argv[2] === 'tls') {
    $m->SMTPSecure = PHPMailer::ENCRYPTION_STARTTLS;
    $m->SMTPAutoTLS = true;
    $m->SMTPOptions = ['ssl' => ['cafile' => $argv[3], 'verify_peer' => true,
        'verify_peer_name' => true, 'peer_name' => 'localhost']];
    $m->SMTPAuth = true;
    $m->AuthType = 'LOGIN';
    $m->Username = $argv[4];
    $m->Password = $argv[5];
} else {
    $m->SMTPAutoTLS = false;
    $m->SMTPAuth = false;
}
$m->setFrom('forum@example.com', 'The Forum');
$m->addAddress('member@example.org');
$m->Subject = $argv[6];
$m->Body = "A new reply in your topic.\n.\nSee you.\n";
$m->send();
echo "sent\n";
"""

pytestmark = pytest.mark.skipif(
    shutil.which("php") is None or not shutil.os.path.exists(AUTOLOAD),
    reason="php-cli and libphp-phpmailer are needed (make deps installs them)")


def php_send(tmp_path, port, subject, mode="plain", ca="", user="", password=""):
    """php_send - run PHPMailer in a real php process; its output"""
    script = tmp_path / "send.php"
    script.write_text(SCRIPT % {"autoload": AUTOLOAD})
    result = subprocess.run(["php", str(script), str(port), mode, str(ca),
        user, password, subject], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_phpmailer_delivers_over_plain_smtp_to_localhost(tmp_path, proxy, upstream):
    assert "sent" in php_send(tmp_path, proxy.port, "phpmailer plain")
    upstream.wait_for_messages(1)
    got = upstream.messages[0]
    assert got.mail_from == "forum@example.com"
    assert got.rcpt_tos == ["member@example.org"]
    assert b"Subject: phpmailer plain" in got.content
    assert b"\r\n.\r\nSee you." in got.content


def test_phpmailer_delivers_over_starttls_with_auth_login(tmp_path, make_proxy,
        upstream):
    ca = tlsca.make_ca(tmp_path / "ca")
    cert = tlsca.make_server_cert(ca, tlsca.LOCAL_NAMES, tmp_path / "cert")
    relay = {"smtphost": LOCALHOST, "smtpport": upstream.port}
    proxy = make_proxy(
        config={"tlscert": str(cert.cert), "tlskey": str(cert.key),
            "auth": "required"},
        accounts={"forum@example.com": {**relay,
            "localpassword": "forum-secret"}})
    out = php_send(tmp_path, proxy.port, "phpmailer tls", "tls", ca.cert,
        "forum@example.com", "forum-secret")
    assert "sent" in out
    upstream.wait_for_messages(1)
    assert b"Subject: phpmailer tls" in upstream.messages[0].content
    assert "with ESMTPSA" in upstream.messages[0].content.decode(
        "utf-8", "replace")
