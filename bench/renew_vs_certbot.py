"""Wall time of one whole `renew` process for one ECDSA certificate, vcs-acme next to certbot.

Both clients run against the same local Pebble 2.10, with an account registered beforehand,
answering HTTP-01 on the same port; each figure is a whole process from start to exit.

    make bench            # or: PYTHONPATH=tests .venv/bin/python -m bench.renew_vs_certbot
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from support.configs import for_pebble, http01
from support.pebble import PebbleConfig, PebbleServer

ROOT = Path(__file__).resolve().parents[1]
BENCH_VENV = ROOT / ".cache" / "bench-venv"
VCS_ACME = Path(sys.executable).with_name("vcs-acme")
DOMAIN = "bench.example.com"


def certbot_binary() -> Path:
    binary = BENCH_VENV / "bin" / "certbot"
    if not binary.exists():
        print("installing certbot into .cache/bench-venv (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        pip = BENCH_VENV / "bin" / "pip"
        subprocess.run([str(pip), "install", "--quiet", "certbot"], check=True)
    return binary


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def vcs_acme_runner(pebble: PebbleServer, folder: Path) -> Callable[[], float]:
    folder.mkdir()
    config = for_pebble(folder, pebble)
    config.certificate("bench", [DOMAIN], key_type="ec256", challenge=http01(pebble))
    command = [str(VCS_ACME), "--config", str(config.write()), "renew", "--force"]
    env = dict(os.environ)
    timed(command, env)  # registers the account
    return lambda: timed(command, env)


def certbot_runner(pebble: PebbleServer, folder: Path) -> Callable[[], float]:
    base = [
        str(certbot_binary()),
        "certonly",
        "--non-interactive",
        "--agree-tos",
        "--email",
        "ops@example.com",
        "--server",
        pebble.directory_url,
        "--standalone",
        "--http-01-port",
        str(pebble.http_port),
        "--http-01-address",
        "127.0.0.1",
        "--key-type",
        "ecdsa",
        "--elliptic-curve",
        "secp256r1",
        "--config-dir",
        str(folder / "config"),
        "--work-dir",
        str(folder / "work"),
        "--logs-dir",
        str(folder / "logs"),
        "--force-renewal",
        "-d",
        DOMAIN,
    ]
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(pebble.ca_file)}
    timed(base, env)  # registers the account
    return lambda: timed(base, env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per client (default 7)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="vcs-acme-bench-"))
    try:
        with PebbleServer(PebbleConfig(version="2.10")) as pebble:
            runners = {
                "vcs-acme": vcs_acme_runner(pebble, folder / "vcs-acme"),
                "certbot": certbot_runner(pebble, folder / "certbot"),
            }
            figures = {name: [run() for _ in range(args.runs)] for name, run in runners.items()}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"one ECDSA P-256 certificate, whole process, {args.runs} runs, Pebble 2.10 on loopback")
    print(f"{'client':<10} {'median s':>9} {'min s':>7} {'max s':>7}")
    for name, times in figures.items():
        print(f"{name:<10} {statistics.median(times):>9.3f} {min(times):>7.3f} {max(times):>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
