"""make install / make uninstall, the service files and the manual pages
(issue 5, parts 6 to 8).

tools/install.sh is run the way the Makefile runs it: with DESTDIR set to a
folder of the test, PREFIX and the built programs in its environment.
Nothing outside that folder is touched: with DESTDIR no user is created
and no service manager is called.

The service files are then checked as the system would read them:
systemd-analyze verify on the unit, sh -n and checkbashisms on the init
script, which is also run for real (start-stop-daemon) against a daemon
of its own; the manual pages go through mandoc -Tlint and groff -ww.  A
checker that is not on this machine makes its test skip, saying which
Debian package brings it.
"""

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
from pathlib import Path

import pytest

import helpers
from helpers import wait_until

REPO = helpers.REPO_ROOT
INSTALL_SH = REPO / "tools" / "install.sh"
DAEMON = Path(helpers.DAEMON)
CTL = Path(os.environ.get("SMTPPROXYCTL") or DAEMON.parent / "smtpproxyctl")

MAN_PAGES = ["man8/smtpproxyd.8", "man8/smtpproxyctl.8", "man5/smtpproxy.ini.5"]
CONFIG = "etc/smtpproxy/smtpproxy.ini"
INIT_SCRIPT = "etc/init.d/smtpproxy"
SPOOL = "var/spool/smtpproxy"
LOGDIR = "var/log/smtpproxy"
PIDFILE = "/run/smtpproxy/smtpproxy.pid"
SERVICE_CAPABILITIES = {"CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID",
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL"}

COMMAND_TIMEOUT = 60        # seconds any one install/checker command may take
INIT_TIMEOUT = 30           # seconds one init script action may take


# ---------------------------------------------------------------- helpers

def run_install(action, destdir, prefix=None, **env):
    """run_install - sh tools/install.sh ACTION as `make install` runs it"""
    e = dict(os.environ)
    e.pop("PREFIX", None)
    e.pop("SYSTEMDUNITDIR", None)
    e.update(DESTDIR=str(destdir), SMTPPROXYD=str(DAEMON),
        SMTPPROXYCTL=str(CTL))
    if prefix is not None:
        e["PREFIX"] = prefix
    e.update(env)
    return subprocess.run(["sh", str(INSTALL_SH), action], env=e,
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT)


def install_ok(destdir, prefix=None, **env):
    """install_ok - install into destdir; fail with the script's output"""
    r = run_install("install", destdir, prefix, **env)
    assert r.returncode == 0, f"install failed:\n{r.stdout}{r.stderr}"
    return r


def uninstall_ok(destdir, prefix=None):
    """uninstall_ok - uninstall from destdir; fail with the script's output"""
    r = run_install("uninstall", destdir, prefix)
    assert r.returncode == 0, f"uninstall failed:\n{r.stdout}{r.stderr}"
    return r


def unit_dir_for_usr():
    """unit_dir_for_usr - where Debian keeps packaged units (PREFIX=/usr)"""
    try:
        r = subprocess.run(["pkg-config", "--variable=systemdsystemunitdir",
            "systemd"], capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip()
    except FileNotFoundError:
        pass
    return "/lib/systemd/system"


def tree(root):
    """tree - {relative path: (file type, permission bits)} under root"""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode),
                stat.S_IMODE(st.st_mode))
    return out


def mode(path):
    """mode - permission bits of a path"""
    return stat.S_IMODE(path.stat().st_mode)


def unit_settings(path):
    """unit_settings - [(section, key, value)] of a systemd unit, in order"""
    section, out = None, []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def unit_values(path, key):
    """unit_values - every value a unit gives key, in order"""
    return [v for _, k, v in unit_settings(path) if k == key]


def ini_config_section(path):
    """ini_config_section - {key: value} of the [config] section of an INI file"""
    values, in_config = {}, False
    for line in Path(path).read_text().splitlines():
        s = line.strip()
        if s.startswith("["):
            in_config = s.replace(" ", "") == "[config]"
            continue
        if in_config and s and s[0] not in "#;" and "=" in s:
            k, _, v = s.partition("=")
            values[k.strip().lower()] = v.strip()
    return values


def shell_assignment(path, name):
    """shell_assignment - the value of the first NAME=value line of a script"""
    m = re.search(rf"^{name}=(.*)$", Path(path).read_text(), re.M)
    assert m, f"{path} sets no {name}"
    return m.group(1).strip().strip("\"'")


def need(tool, package):
    """need - the path of a checker, or skip naming the package that has it"""
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed here (Debian package {package})")
    return path


def is_running(pid):
    """is_running - does that process exist (and is not a zombie)"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def greets(port):
    """greets - does something on 127.0.0.1:port answer with a 220 line"""
    try:
        with socket.create_connection((helpers.LOCALHOST, port),
                timeout=helpers.CLIENT_TIMEOUT) as s:
            return s.recv(512).startswith(b"220")
    except OSError:
        return False


@pytest.fixture(scope="module")
def built():
    """built - the programs to install must exist: they are built by make"""
    for p in (DAEMON, CTL):
        assert p.is_file() and os.access(p, os.X_OK), \
            f"{p} is not built: run `make all` first"


@pytest.fixture
def dest(tmp_path, built):
    """dest - a fresh DESTDIR with the default PREFIX installed into it"""
    root = tmp_path / "dest"
    install_ok(root)
    return root


# ---------------------------------------------------------------- layout

def test_install_lays_out_every_file_with_sane_modes(dest):
    expected = {
        "usr/local/sbin/smtpproxyd": (stat.S_IFREG, 0o755),
        "usr/local/sbin/smtpproxyctl": (stat.S_IFREG, 0o755),
        "usr/local/share/man/man8/smtpproxyd.8": (stat.S_IFREG, 0o644),
        "usr/local/share/man/man8/smtpproxyctl.8": (stat.S_IFREG, 0o644),
        "usr/local/share/man/man5/smtpproxy.ini.5": (stat.S_IFREG, 0o644),
        "usr/local/lib/systemd/system/smtpproxy.service": (stat.S_IFREG, 0o644),
        INIT_SCRIPT: (stat.S_IFREG, 0o755),
        CONFIG: (stat.S_IFREG, 0o640),
        SPOOL: (stat.S_IFDIR, 0o700),
        SPOOL + "/tmp": (stat.S_IFDIR, 0o700),
        SPOOL + "/new": (stat.S_IFDIR, 0o700),
        SPOOL + "/cur": (stat.S_IFDIR, 0o700),
        SPOOL + "/failed": (stat.S_IFDIR, 0o700),
        LOGDIR: (stat.S_IFDIR, 0o750),
    }
    got = tree(dest)
    for path, want in expected.items():
        assert path in got, f"{path} was not installed"
        assert got[path] == want, \
            f"{path}: mode {got[path][1]:o}, expected {want[1]:o}"
    files = {p for p, (kind, _) in got.items() if kind != stat.S_IFDIR}
    assert files == {p for p, (kind, _) in expected.items()
        if kind != stat.S_IFDIR}, "install put files there it should not"
    for path, (kind, bits) in got.items():
        assert bits & 0o022 == 0, f"{path} is writable by others: {bits:o}"
        assert bits & 0o6000 == 0, f"{path} is set-id: {bits:o}"


def test_installed_programs_are_the_built_ones(dest):
    for name, built in (("smtpproxyd", DAEMON), ("smtpproxyctl", CTL)):
        assert (dest / "usr/local/sbin" / name).read_bytes() == built.read_bytes()
    r = subprocess.run([str(dest / "usr/local/sbin/smtpproxyd"), "-V"],
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    assert r.returncode == 0 and r.stdout.startswith("smtpproxyd ")


def test_service_files_name_the_daemon_under_prefix(tmp_path, built):
    root = tmp_path / "dest"
    install_ok(root, prefix="/usr")
    unit = root / unit_dir_for_usr().lstrip("/") / "smtpproxy.service"
    assert unit.is_file(), f"PREFIX=/usr: no unit in {unit.parent}"
    assert (root / "usr/sbin/smtpproxyd").is_file()
    assert (root / "usr/share/man/man5/smtpproxy.ini.5").is_file()
    assert unit_values(unit, "ExecStart") == [
        "/usr/sbin/smtpproxyd -c /etc/smtpproxy/smtpproxy.ini"]
    init = root / INIT_SCRIPT
    assert shell_assignment(init, "DAEMON") == "/usr/sbin/smtpproxyd"
    for f in (unit, init):
        assert "/usr/local" not in f.read_text(), f"{f} still names /usr/local"
    # The fixed places do not move with PREFIX.
    assert (root / CONFIG).is_file() and (root / SPOOL / "new").is_dir()


def test_systemdunitdir_chooses_where_the_unit_goes(tmp_path, built):
    root = tmp_path / "dest"
    install_ok(root, SYSTEMDUNITDIR="/etc/systemd/system")
    assert (root / "etc/systemd/system/smtpproxy.service").is_file()
    assert not (root / "usr/local/lib/systemd").exists()
    r = run_install("uninstall", root, SYSTEMDUNITDIR="/etc/systemd/system")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (root / "etc/systemd/system/smtpproxy.service").exists()


def test_install_is_idempotent(dest):
    before = tree(dest)
    config = (dest / CONFIG).read_bytes()
    install_ok(dest)
    assert tree(dest) == before
    assert (dest / CONFIG).read_bytes() == config


def test_install_without_built_programs_fails_and_installs_nothing(tmp_path, built):
    root = tmp_path / "dest"
    r = run_install("install", root, SMTPPROXYD=str(tmp_path / "missing"))
    assert r.returncode != 0
    assert "not built" in r.stderr
    assert not root.exists() or not any(root.iterdir())


def test_install_refuses_a_relative_prefix(tmp_path, built):
    r = run_install("install", tmp_path / "dest", prefix="usr/local")
    assert r.returncode != 0 and "PREFIX" in r.stderr


def test_unknown_action_is_a_usage_error(tmp_path):
    r = run_install("reinstall", tmp_path / "dest")
    assert r.returncode == 2 and "usage" in r.stderr


# ---------------------------------------------------------------- config

def test_installed_config_is_the_example_set_up_for_the_service(dest):
    installed = dest / CONFIG
    values = ini_config_section(installed)
    assert values["user"] == "smtpproxy"
    assert values["group"] == "smtpproxy"
    assert values["msgdir"] == "/var/spool/smtpproxy"
    assert values["pidfile"] == PIDFILE
    # Everything else is the example as it is: accounts, comments, defaults.
    example = (REPO / "etc/smtpproxy.ini").read_text().splitlines()
    lines = installed.read_text().splitlines()
    changed = {"user", "group", "msgdir", "pidfile"}

    def keep(line):
        key = re.match(r"^[#;]?\s*(\w+)\s*[=:]", line)
        return not (key and key.group(1).lower() in changed)
    assert [l for l in lines if keep(l) and not l.startswith("# Installed")
        and not l.startswith("# below are") and l != "#"] == \
        [l for l in example if keep(l) and l != "#"]


def test_installed_config_passes_the_daemons_check(dest):
    r = subprocess.run([str(DAEMON), "-t", "-c", str(dest / CONFIG)],
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "config OK" in r.stdout
    assert "WARNING" not in r.stderr, r.stderr


def test_existing_config_is_never_overwritten(tmp_path, built):
    root = tmp_path / "dest"
    config = root / CONFIG
    config.parent.mkdir(parents=True)
    config.write_text("# the admin's own\n[default]\nsmtphost=mail.example.org\n")
    config.chmod(0o600)
    r = install_ok(root)
    assert config.read_text() == \
        "# the admin's own\n[default]\nsmtphost=mail.example.org\n"
    assert mode(config) == 0o600
    assert "kept" in r.stdout
    assert [p.name for p in config.parent.iterdir()] == ["smtpproxy.ini"], \
        "install left files beside the configuration"


def test_config_pidfile_matches_the_unit_and_the_init_script(dest):
    unit = dest / "usr/local/lib/systemd/system/smtpproxy.service"
    pidfile = ini_config_section(dest / CONFIG)["pidfile"]
    assert unit_values(unit, "PIDFile") == [pidfile]
    assert shell_assignment(dest / INIT_SCRIPT, "PIDFILE") == pidfile
    # systemd makes /run/smtpproxy through RuntimeDirectory=.
    assert unit_values(unit, "RuntimeDirectory") == [Path(pidfile).parent.name]


# ---------------------------------------------------------------- uninstall

def test_uninstall_removes_what_install_put_there_but_keeps_config_and_spool(dest):
    message = dest / SPOOL / "new" / "1732250000.M1P1Q1.host"
    message.write_bytes(b"X-Envelope-From: <a@example.com>\r\n\r\nkept\r\n")
    config = (dest / CONFIG).read_bytes()
    r = uninstall_ok(dest)
    for gone in ["usr/local/sbin/smtpproxyd", "usr/local/sbin/smtpproxyctl",
            "usr/local/lib/systemd/system/smtpproxy.service", INIT_SCRIPT] + \
            ["usr/local/share/man/" + m for m in MAN_PAGES]:
        assert not (dest / gone).exists(), f"{gone} is still there"
    assert (dest / CONFIG).read_bytes() == config
    assert message.read_bytes().endswith(b"kept\r\n")
    for d in ("tmp", "new", "cur", "failed"):
        assert (dest / SPOOL / d).is_dir()
    assert (dest / LOGDIR).is_dir()
    assert "Kept" in r.stdout and "/etc/smtpproxy/smtpproxy.ini" in r.stdout \
        and "/var/spool/smtpproxy" in r.stdout
    # A second uninstall finds nothing to do and says the same.
    uninstall_ok(dest)


def test_uninstall_then_install_gives_the_same_layout(dest):
    before = tree(dest)
    uninstall_ok(dest)
    install_ok(dest)
    assert tree(dest) == before


# ---------------------------------------------------------------- as root

# Run as root without DESTDIR, install.sh changes the system: it creates a
# user and writes /etc, /usr/local and /var.  This script does that inside
# namespaces of its own (mount, network, PID) with /etc, /usr/local, /var
# and /run behind overlays on a tmpfs, so the machine is left as it was and
# every process it started ends with it.  Exit 77: cannot set that up here.
ROOT_INSTALL_SCRIPT = r"""
set -u
work=$1
setup() {
	mount -t tmpfs smtpproxy-test "$work" || return 1
	for d in etc usr/local var run; do
		n=$(echo "$d" | tr / _)
		mkdir -p "$work/$n/up" "$work/$n/work" || return 1
		mount -t overlay overlay \
		    -o "lowerdir=/$d,upperdir=$work/$n/up,workdir=$work/$n/work" \
		    "/$d" || return 1
	done
	ip link set lo up || return 1
}
setup || exit 77
show() {
	for p in "$@"; do
		echo "STAT $(stat -c '%U:%G %a' "$p") $p"
	done
}
echo "== install"
sh tools/install.sh install; echo "RC install $?"
echo "PASSWD $(getent passwd smtpproxy)"
show /etc/smtpproxy/smtpproxy.ini /var/spool/smtpproxy \
    /var/spool/smtpproxy/new /var/log/smtpproxy /usr/local/sbin/smtpproxyd
echo "== install again"
sh tools/install.sh install; echo "RC install-again $?"
echo "== start"
/etc/init.d/smtpproxy start; echo "RC start $?"
for pid in $(pgrep -x smtpproxyd); do
	echo "PROC $(ps -o user= -p "$pid") $(ps -o ppid= -p "$pid" | tr -d ' ')"
done
echo "MASTER $(cat /run/smtpproxy/smtpproxy.pid)"
/usr/local/sbin/smtpproxyctl queue; echo "RC queue $?"
/etc/init.d/smtpproxy stop; echo "RC stop $?"
echo "LEFT $(pgrep -x smtpproxyd | wc -l)"
echo "== uninstall"
sh tools/install.sh uninstall; echo "RC uninstall $?"
for p in /usr/local/sbin/smtpproxyd /etc/init.d/smtpproxy \
    /etc/smtpproxy/smtpproxy.ini /var/spool/smtpproxy/new; do
	if [ -e "$p" ]; then echo "EXISTS $p"; else echo "GONE $p"; fi
done
echo "PASSWD-AFTER $(getent passwd smtpproxy)"
"""


def test_root_install_creates_the_user_and_the_service_drops_to_it(tmp_path, built):
    if os.geteuid() != 0:
        pytest.skip("installing for real needs root")
    need("unshare", "util-linux")
    need("start-stop-daemon", "dpkg")
    need("ip", "iproute2")
    script = tmp_path / "root-install.sh"
    script.write_text(ROOT_INSTALL_SCRIPT)
    work = tmp_path / "overlay"
    work.mkdir()
    env = dict(os.environ, SMTPPROXYD=str(DAEMON), SMTPPROXYCTL=str(CTL),
        SYSTEMCTL_SKIP_REDIRECT="1")
    env.pop("DESTDIR", None)
    env.pop("PREFIX", None)
    r = subprocess.run(["unshare", "--mount", "--net", "--pid", "--fork",
        "--mount-proc", "sh", str(script), str(work)], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=4 * INIT_TIMEOUT)
    out = r.stdout + r.stderr
    if r.returncode == 77 or "unshare failed" in r.stderr:
        pytest.skip(f"no private namespaces with overlays here: {r.stderr.strip()}")
    assert r.returncode == 0, out
    rcs = dict(re.findall(r"^RC (\S+) (\d+)$", r.stdout, re.M))
    assert rcs == {"install": "0", "install-again": "0", "start": "0",
        "queue": "0", "stop": "0", "uninstall": "0"}, out

    assert "system user smtpproxy created" in r.stdout
    assert r.stdout.count("system user smtpproxy created") == 1, \
        "the second install reuses the user"
    passwd = re.search(r"^PASSWD (.*)$", r.stdout, re.M).group(1).split(":")
    assert passwd[0] == "smtpproxy" and int(passwd[2]) != 0
    assert passwd[5] == "/var/spool/smtpproxy"
    assert passwd[6].endswith("nologin") or passwd[6] == "/bin/false"

    stats = {p: (owner, bits) for owner, bits, p in
        re.findall(r"^STAT (\S+) (\d+) (\S+)$", r.stdout, re.M)}
    assert stats["/etc/smtpproxy/smtpproxy.ini"] == ("root:root", "640")
    assert stats["/var/spool/smtpproxy"] == ("smtpproxy:smtpproxy", "700")
    assert stats["/var/spool/smtpproxy/new"] == ("smtpproxy:smtpproxy", "700")
    assert stats["/var/log/smtpproxy"][1] == "750"
    assert stats["/var/log/smtpproxy"][0].startswith("smtpproxy:")
    assert stats["/usr/local/sbin/smtpproxyd"] == ("root:root", "755")

    # The master started by the init script stays root; its children run as
    # the user of the installed configuration.
    master = re.search(r"^MASTER (\d+)$", r.stdout, re.M).group(1)
    procs = re.findall(r"^PROC (\S+) (\d+)$", r.stdout, re.M)
    assert ("root" in [u for u, _ in procs]), out
    children = [u for u, ppid in procs if ppid == master]
    assert len(children) >= 2, f"a listener and the relay: {procs}"
    assert set(children) == {"smtpproxy"}, out
    assert "LEFT 0" in r.stdout, "stop left processes behind"

    assert "GONE /usr/local/sbin/smtpproxyd" in r.stdout
    assert "GONE /etc/init.d/smtpproxy" in r.stdout
    assert "EXISTS /etc/smtpproxy/smtpproxy.ini" in r.stdout
    assert "EXISTS /var/spool/smtpproxy/new" in r.stdout
    assert re.search(r"^PASSWD-AFTER smtpproxy:", r.stdout, re.M), \
        "uninstall keeps the user"


# ---------------------------------------------------------------- systemd unit

def test_unit_is_forking_with_the_pidfile_config_check_and_hup_reload(dest):
    unit = dest / "usr/local/lib/systemd/system/smtpproxy.service"
    assert unit_values(unit, "Type") == ["forking"]
    assert unit_values(unit, "PIDFile") == [PIDFILE]
    assert unit_values(unit, "ExecStartPre") == [
        "/usr/local/sbin/smtpproxyd -t -c /etc/smtpproxy/smtpproxy.ini"]
    assert unit_values(unit, "ExecStart") == [
        "/usr/local/sbin/smtpproxyd -c /etc/smtpproxy/smtpproxy.ini"]
    reload = unit_values(unit, "ExecReload")
    assert reload[-1] == "/bin/kill -HUP $MAINPID"
    assert all("-t" in r for r in reload[:-1]), "reload checks the config first"
    assert unit_values(unit, "Restart") == ["on-failure"]
    # SIGTERM to the master only: it lets the sessions finish.
    assert unit_values(unit, "KillMode") == ["mixed"]
    assert unit_values(unit, "WantedBy") == ["multi-user.target"]


def test_unit_is_sandboxed_to_what_the_daemon_needs(dest):
    unit = dest / "usr/local/lib/systemd/system/smtpproxy.service"
    for key, value in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
            ("PrivateTmp", "yes"), ("ProtectHome", "yes"),
            ("PrivateDevices", "yes"), ("ProtectKernelTunables", "yes"),
            ("ProtectKernelModules", "yes"), ("ProtectControlGroups", "yes")]:
        assert unit_values(unit, key) == [value], key
    assert set(" ".join(unit_values(unit, "RestrictAddressFamilies")).split()) \
        == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert set(" ".join(unit_values(unit, "CapabilityBoundingSet")).split()) \
        == SERVICE_CAPABILITIES
    writable = " ".join(unit_values(unit, "ReadWritePaths")).split()
    spool = ini_config_section(dest / CONFIG)["msgdir"]
    assert spool in writable, "the spool of the installed config is writable"
    assert any(w.lstrip("-") == "/var/log/smtpproxy" for w in writable)
    assert not unit_values(unit, "User"), "the master must start as root"


def systemd_analyze_works(tmp_path):
    """systemd_analyze_works - None, or why verify cannot run here"""
    probe = tmp_path / "probe" / "smtpproxy-probe.service"
    probe.parent.mkdir()
    probe.write_text("[Unit]\nDescription=probe\n[Service]\nExecStart=/bin/true\n")
    try:
        r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(probe)],
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if r.returncode != 0 or r.stdout.strip() or r.stderr.strip():
        return (r.stdout + r.stderr).strip() or f"exit status {r.returncode}"
    return None


def test_unit_passes_systemd_analyze_verify(dest, tmp_path):
    need("systemd-analyze", "systemd")
    why = systemd_analyze_works(tmp_path)
    if why is not None:
        pytest.skip(f"systemd-analyze verify cannot run here: {why}")
    # The unit names /usr/local/sbin/smtpproxyd; verify checks that it is an
    # executable, so a copy names the one under DESTDIR instead.  The man:
    # pages of Documentation= are looked up under DESTDIR too.
    installed = dest / "usr/local/lib/systemd/system/smtpproxy.service"
    unit = tmp_path / "units" / "smtpproxy.service"
    unit.parent.mkdir()
    unit.write_text(installed.read_text().replace(
        "/usr/local/sbin/", f"{dest}/usr/local/sbin/"))
    env = dict(os.environ, MANPATH=str(dest / "usr/local/share/man"))
    man = "--man=yes" if shutil.which("man") else "--man=no"
    r = subprocess.run(["systemd-analyze", "verify", man, str(unit)],
        capture_output=True, text=True, env=env, timeout=COMMAND_TIMEOUT)
    # verify exits 0 on unknown keys and bad values too: only silence is clean.
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 0 and out == "", out


# ---------------------------------------------------------------- init script

def test_init_script_has_an_lsb_header(dest):
    text = (dest / INIT_SCRIPT).read_text()
    m = re.search(r"^### BEGIN INIT INFO\n(.*?)^### END INIT INFO$", text,
        re.S | re.M)
    assert m, "no LSB header"
    fields = dict(re.findall(r"^# ([\w-]+):\s*(.*)$", m.group(1), re.M))
    assert fields["Provides"] == "smtpproxy"
    assert "$network" in fields["Required-Start"]
    assert "$remote_fs" in fields["Required-Start"]
    assert fields["Default-Start"].split() == ["2", "3", "4", "5"]
    assert fields["Default-Stop"].split() == ["0", "1", "6"]
    assert fields.get("Short-Description")


def test_init_script_parses_as_posix_sh(dest):
    for shell in ("sh", "dash", "posh"):
        path = shutil.which(shell)
        if path is None:
            continue
        r = subprocess.run([path, "-n", str(dest / INIT_SCRIPT)],
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        assert r.returncode == 0, f"{shell} -n: {r.stderr}"


def test_init_script_and_install_script_pass_checkbashisms(dest):
    tool = need("checkbashisms", "devscripts")
    for script in (dest / INIT_SCRIPT, INSTALL_SH):
        r = subprocess.run([tool, "--posix", str(script)], capture_output=True,
            text=True, timeout=COMMAND_TIMEOUT)
        assert r.returncode == 0, r.stdout + r.stderr


class InitScript:
    """The installed init script, run on a daemon of the test's own: a copy
    whose /etc/default/smtpproxy is a file of the test naming the installed
    daemon, a config on a free port, and a pid file under tmp_path."""

    def __init__(self, dest, tmp_path):
        self.dir = tmp_path / "initd"
        self.dir.mkdir()
        self.port = helpers.free_port()
        self.config = self.dir / "smtpproxy.ini"
        self.pidfile = self.dir / "run" / "smtpproxy.pid"
        self.log = self.dir / "smtpproxyd.log"
        self.write_config()
        defaults = self.dir / "default"
        defaults.write_text(
            f"DAEMON={dest}/usr/local/sbin/smtpproxyd\n"
            f"CONFIG={self.config}\nPIDFILE={self.pidfile}\nSTOP_TIMEOUT=20\n")
        # Not under /etc/init.d and with another name, so lsb-base never
        # hands the actions to systemctl.
        self.script = self.dir / "smtpproxy-test"
        self.script.write_text((dest / INIT_SCRIPT).read_text().replace(
            "/etc/default/smtpproxy", str(defaults)))
        self.script.chmod(0o755)
        self.pids = set()

    def write_config(self, extra=""):
        self.config.write_text(
            "[config]\n"
            f"port={self.port}\nlisten={helpers.LOCALHOST}\n"
            f"msgdir={self.dir / 'spool'}\npidfile={self.pidfile}\n"
            "processes=1\n"
            f"[logging]\nfile={self.log}\nlevel=INFO\n"
            "[default]\nsmtphost=127.0.0.1\nsmtpport=9\n" + extra)

    def __call__(self, action):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "SYSTEMCTL_SKIP_REDIRECT": "1", "LANG": "C"}
        r = subprocess.run([str(self.script), action], capture_output=True,
            text=True, env=env, timeout=INIT_TIMEOUT)
        if self.pidfile.exists():
            self.pids.add(self.pid())
        return r

    def pid(self):
        return int(self.pidfile.read_text().strip())

    def log_text(self):
        return self.log.read_text() if self.log.exists() else ""

    def cleanup(self):
        """cleanup - stop any daemon this test started, by its own PID"""
        for pid in self.pids:
            if is_running(pid):
                os.kill(pid, signal.SIGTERM)
        for pid in self.pids:
            try:
                wait_until(lambda: not is_running(pid), helpers.STOP_TIMEOUT,
                    f"smtpproxyd {pid} to stop")
            except AssertionError:
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def initd(dest, tmp_path):
    need("start-stop-daemon", "dpkg")
    s = InitScript(dest, tmp_path)
    yield s
    s.cleanup()


def test_init_script_start_status_reload_stop(initd):
    r = initd("start")
    assert r.returncode == 0, r.stdout + r.stderr
    # The pid file is there when start returns, and names the master.
    pid = initd.pid()
    assert is_running(pid)
    assert greets(initd.port), "the daemon accepts connections after start"

    r = initd("start")
    assert r.returncode == 0, "start of a running daemon is not an error"
    assert initd.pid() == pid

    r = initd("status")
    assert r.returncode == 0 and str(pid) in r.stdout

    r = initd("reload")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_until(lambda: "configuration reloaded" in initd.log_text(), 10,
        "the daemon to log its reload")
    assert initd.pid() == pid

    r = initd("force-reload")
    assert r.returncode == 0, r.stdout + r.stderr

    r = initd("restart")
    assert r.returncode == 0, r.stdout + r.stderr
    assert initd.pid() != pid and is_running(initd.pid())
    assert not is_running(pid)
    assert greets(initd.port)

    pid = initd.pid()
    r = initd("stop")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not is_running(pid)
    assert not initd.pidfile.exists()

    r = initd("status")
    assert r.returncode == 3, "LSB: 3 is 'not running'"
    r = initd("stop")
    assert r.returncode == 0, "stop of a stopped daemon is not an error"
    r = initd("reload")
    assert r.returncode == 7, "LSB: 7 is 'not running'"


def test_init_script_checks_the_config_before_it_touches_the_daemon(initd):
    assert initd("start").returncode == 0
    pid = initd.pid()
    initd.write_config(extra="[config]\nport=twenty-five\n")

    for action in ("reload", "restart"):
        r = initd(action)
        assert r.returncode == 1, f"{action} with a broken config"
        assert "is not a number for key 'port'" in r.stderr
        assert initd.pid() == pid and is_running(pid), \
            f"{action} with a broken config left the daemon alone"
    assert "configuration reloaded" not in initd.log_text()
    assert greets(initd.port)

    assert initd("stop").returncode == 0
    r = initd("start")
    assert r.returncode == 1, "start with a broken config fails"
    assert initd("status").returncode == 3


def test_init_script_rejects_an_unknown_action(initd):
    r = initd("bounce")
    assert r.returncode != 0 and "usage" in r.stderr


# ---------------------------------------------------------------- manual pages

@pytest.mark.parametrize("page", MAN_PAGES)
def test_man_page_is_clean_under_mandoc_lint(dest, page):
    tool = need("mandoc", "mandoc")
    # -Wwarning: STYLE notes about pages not installed here are not faults.
    r = subprocess.run([tool, "-Tlint", "-Wwarning",
        str(dest / "usr/local/share/man" / page)], capture_output=True,
        text=True, timeout=COMMAND_TIMEOUT)
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 0 and out == "", out


@pytest.mark.parametrize("page", MAN_PAGES)
def test_man_page_is_clean_under_groff(dest, page):
    tool = need("groff", "groff-base")
    r = subprocess.run([tool, "-ww", "-mandoc", "-z",
        str(dest / "usr/local/share/man" / page)], capture_output=True,
        text=True, timeout=COMMAND_TIMEOUT)
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 0 and out == "", out


def split_args(text):
    """split_args - the arguments of a C macro call, split at top-level commas"""
    args, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            args.append(cur.strip())
            cur = ""
            continue
        depth += {"(": 1, ")": -1}.get(ch, 0)
        cur += ch
    return args + [cur.strip()]


def config_keys():
    """config_keys - [(name, default or None)] of config.c's key table"""
    src = (REPO / "common/config.c").read_text()
    table = src[src.index("keys[] = {"):]
    table = table[:table.index("\n};")]
    keys = []
    for m in re.finditer(r"\bK_(INT|SIZE|BOOL|ENUM|STR|PATH|LIST)\(", table):
        depth, end = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(table[end], 0)
            end += 1
        args = split_args(table[m.end():end - 1])
        default = args[4 if m.group(1) == "LIST" else 3]
        keys.append((args[1].strip('"'),
            None if default == "NULL" else default.strip('"')))
    for m in re.finditer(r'\.name = "(\w+)",.*?\.def = "([^"]*)"', table, re.S):
        keys.append((m.group(1), m.group(2)))
    return keys


def man_items(page):
    """man_items - the .It lines of a manual page source"""
    return [l for l in (REPO / "man" / page).read_text().splitlines()
        if l.startswith(".It ")]


def test_ini_man_page_documents_every_key_with_its_default():
    keys = config_keys()
    assert len(keys) >= 45, f"only {len(keys)} keys read from config.c"
    items = man_items("smtpproxy.ini.5")
    for name, default in keys:
        item = [l for l in items if re.search(rf"\bCm {name}\b", l)]
        assert item, f"smtpproxy.ini(5) does not document {name}"
        if default is not None:
            assert "default" in item[0] and \
                default in item[0].split("default", 1)[1], \
                f"smtpproxy.ini(5) gives {name} another default than {default!r}"


def test_ini_man_page_names_the_retired_keys():
    src = (REPO / "common/config.c").read_text()
    page = (REPO / "man/smtpproxy.ini.5").read_text()
    for name in re.findall(r'K_OLD\(\w+,\s*"(\w+)"', src):
        assert re.search(rf"^\.Cm {name}$", page, re.M), name


def test_daemon_man_page_documents_every_option():
    src = (REPO / "smtpproxyd/main.c").read_text()
    letters = re.search(r'getopt\(argc, argv, "([^"]+)"\)', src).group(1)
    items = man_items("smtpproxyd.8")
    for letter in letters.replace(":", ""):
        assert any(re.match(rf"\.It Fl {letter}\b", l) for l in items), \
            f"smtpproxyd(8) does not document -{letter}"


def test_ctl_man_page_documents_every_command():
    items = man_items("smtpproxyctl.8")
    for command in ("check", "queue", "flush", "retry", "delete", "status"):
        assert any(l.startswith(f".It Cm {command}") for l in items), command
    page = (REPO / "man/smtpproxyctl.8").read_text().lower()
    assert "not implemented" not in page
