"""Smoke run of the benchmark (bench/run.py --quick): a few messages per
point through smtpproxy, a private Postfix and the tools' ceiling, so that
the benchmark keeps working.  Never a timed assertion: only that it runs,
measures every system and writes its table and CSV."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "bench" / "run.py"


@pytest.mark.skipif(os.geteuid() != 0,
    reason="the benchmark runs a private Postfix instance, which needs root")
def test_quick_benchmark_runs_and_reports_every_system(tmp_path):
    env = dict(os.environ)
    env.setdefault("SMTPPROXYD", str(ROOT / "smtpproxyd" / "smtpproxyd"))
    csv = tmp_path / "quick.csv"
    result = subprocess.run([sys.executable, str(RUN), "--quick", "--csv",
        str(csv)], capture_output=True, text=True, timeout=240, env=env,
        cwd=ROOT)
    if result.returncode == 2:
        pytest.skip("Postfix's smtp-source/smtp-sink are not installed "
            "(make bench installs them): " + result.stderr.strip()[-200:])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "THROUGHPUT" in result.stdout
    text = csv.read_text()
    for system in ("smtpproxy", "postfix", "direct"):
        assert f",{system}," in text, f"no {system} rows in the CSV"
    assert "\ndisk,,,,,,flush," in text, "no disk flush probe in the CSV"
    assert "disk cache flush" in result.stdout
