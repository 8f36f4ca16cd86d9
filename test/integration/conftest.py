"""Fixtures of the integration tests.

  upstream     a running recording aiosmtpd server (helpers.Upstream)
  make_proxy   make_proxy(syntax="ini", config={}, logging={}, accounts=None,
               start=True) -> helpers.Daemon: writes a config into tmp_path
               (free port, listen 127.0.0.1, msgdir tmp_path/msgs, accounts
               relaying to the upstream) and starts smtpproxyd -f on it
  proxy        make_proxy() with the defaults

When a test fails, the log of every daemon it started is added to the
report.  Every daemon is stopped at teardown by its own PID.
"""

from pathlib import Path

import pytest

import helpers


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for daemon in getattr(item, "_smtpproxyd_daemons", []):
        report.sections.append(
            (f"smtpproxyd log ({report.when}): {daemon.log_path}", daemon.log_text()))


@pytest.fixture
def upstream():
    server = helpers.Upstream()
    server.start()
    yield server
    server.stop()


def default_settings(tmp_path, upstream_port):
    """default_settings - a ProxyConfig relaying everything to the upstream"""
    return helpers.ProxyConfig(
        config={
            "port": helpers.free_port(),
            "listen": helpers.LOCALHOST,
            "msgdir": str(tmp_path / "msgs"),
            "sleeptime": 30,
            "hostname": "proxy.test",
            "processes": 2,
        },
        logging={"level": "DEBUG"},
        accounts={
            "default": {
                "smtphost": helpers.LOCALHOST,
                "smtpport": upstream_port,
                "localhostname": "relay.example.org",
            },
        })


@pytest.fixture
def make_proxy(request, tmp_path, upstream):
    daemons = []
    request.node._smtpproxyd_daemons = daemons

    def make(syntax="ini", config=None, logging=None, accounts=None, start=True):
        settings = default_settings(tmp_path, upstream.port)
        settings.config.update(config or {})
        settings.logging.update(logging or {})
        if accounts is not None:
            settings.accounts = dict(accounts)
        n = len(daemons)
        name = "smtpproxy.ini" if syntax == "ini" else "smtpproxy.conf"
        folder = tmp_path / f"daemon{n}"
        folder.mkdir()
        path = settings.write(folder / name, syntax)
        msgdir = settings.config["msgdir"]
        Path(msgdir).mkdir(parents=True, exist_ok=True)
        daemon = helpers.Daemon(path, settings.config["port"], msgdir,
            tmp_path / f"smtpproxyd{n}.log")
        daemon.settings = settings
        daemons.append(daemon)
        if not start:
            return daemon
        for _ in range(helpers.PORT_TRIES - 1):
            try:
                return daemon.start()
            except helpers.PortTaken:
                if "port" in (config or {}):
                    raise
            # Another process took the port between our look and the
            # daemon's bind: move to a new one.
            daemon.port = settings.config["port"] = helpers.free_port()
            settings.write(path, syntax)
        return daemon.start()

    yield make

    errors = []
    for daemon in daemons:
        try:
            daemon.stop()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


@pytest.fixture
def proxy(make_proxy):
    return make_proxy()
