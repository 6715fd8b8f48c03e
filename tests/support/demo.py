"""`make demo`: a local Pebble, one `vcs-acme renew` and `vcs-acme status` on config/demo.toml.

Run from the repository root as ``PYTHONPATH=tests python -m support.demo``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from support.pebble import PebbleConfig, PebbleServer

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "demo.toml"
CA_COPY = ROOT / "state" / "demo-ca" / "pebble-api.pem"
VCS_ACME = Path(sys.executable).with_name("vcs-acme")


def _run(*args: str) -> int:
    command = [str(VCS_ACME), "--config", str(CONFIG), *args]
    print("$ vcs-acme --config config/demo.toml " + " ".join(args), flush=True)
    return subprocess.run(command, check=False).returncode


def main() -> int:
    # Pebble forgets everything when it stops, so the demo's state from an earlier run
    # refers to an account and certificates no CA knows any more: start afresh.
    shutil.rmtree(ROOT / "state" / "demo", ignore_errors=True)
    config = PebbleConfig(version="2.10", http_port=5002)
    with PebbleServer(config, api_port=14000) as pebble:
        CA_COPY.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copyfile(pebble.ca_file, CA_COPY)
        print(f"Pebble {pebble.package_version} is answering at {pebble.directory_url}")
        renewed = _run("renew")
        print()
        status = _run("status")
    return renewed or status


if __name__ == "__main__":
    sys.exit(main())
