"""Resident memory and CPU time of `vcs-acme run` while idle, after its first work is done.

The daemon issues one certificate and deploys it to one emulated device, then has nothing to
do for a while; the figures are read from /proc before and after an idle minute.

    make bench-idle     # or: PYTHONPATH=tests .venv/bin/python -m bench.daemon_idle
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from emulator.device import DeviceEmulator
from support.configs import for_pebble, http01
from support.devices import device_entry
from support.notify import NotifySocket
from support.pebble import PebbleConfig, PebbleServer

from vcs_acme.store import Store

TICKS = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="idle time measured")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="vcs-acme-idle-"))
    (folder / "password").write_text("bench-password")
    with (
        PebbleServer(PebbleConfig(version="2.4")) as pebble,
        DeviceEmulator("vcs", "X14.3", "admin", "bench-password") as vcs,
        NotifySocket(folder) as notify,
    ):
        config = for_pebble(folder, pebble)
        config.devices = [device_entry("vcs-1", vcs, folder, folder / "password")]
        config.certificate("bench", ["vcs.example.com"], challenge=http01(pebble),
                           devices=["vcs-1"])  # fmt: skip
        env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "60000000"}
        command = [sys.executable, "-m", "vcs_acme", "--config", str(config.write()), "run"]
        daemon = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        try:
            notify.wait_for("READY=1", 30)
            lineage = Store(config.state).lineage("bench")
            deadline = time.monotonic() + 60
            while (lineage.device_state("vcs-1") or {}).get("state") != "verified":
                if time.monotonic() > deadline:
                    raise SystemExit("the daemon did not deploy within a minute")
                time.sleep(0.2)
            time.sleep(2)  # let the follow-up run (renewal information) finish
            rss_before, cpu_before = rss_kib(daemon.pid), cpu_seconds(daemon.pid)
            time.sleep(args.seconds)
            rss_after, cpu_after = rss_kib(daemon.pid), cpu_seconds(daemon.pid)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)
    print(f"vcs-acme run, idle for {args.seconds:g} s after issuing and deploying one certificate")
    print(f"resident memory: {rss_before / 1024:.1f} MiB before, {rss_after / 1024:.1f} MiB after")
    print(f"CPU time while idle: {cpu_after - cpu_before:.2f} s "
          f"({100 * (cpu_after - cpu_before) / args.seconds:.2f} % of one core)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
