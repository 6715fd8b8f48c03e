"""`make demo`: a local Pebble, two emulated Expressway-E peers, `vcs-acme renew`, `status`.

Run from the repository root as ``PYTHONPATH=tests python -m support.demo``. Pebble 2.4
(Debian 12's) is the CA because its certificates carry the clientAuth EKU that Expressway-E
releases before X15.4 require.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

from emulator.device import DeviceEmulator

from support.pebble import PebbleConfig, PebbleServer

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "demo.toml"
FILES = ROOT / "state" / "demo-ca"
VCS_ACME = Path(sys.executable).with_name("vcs-acme")
PEERS = {"peer1": ("X14.3.2", (14431, 15061)), "peer2": ("X15.0", (14432, 15062))}


def _run(*args: str) -> int:
    command = [str(VCS_ACME), "--config", str(CONFIG), *args]
    print("$ vcs-acme --config config/demo.toml " + " ".join(args), flush=True)
    return subprocess.run(command, check=False).returncode


def _write(name: str, content: bytes, mode: int = 0o600) -> None:
    path = FILES / name
    path.write_bytes(content)
    path.chmod(mode)


def _start_peer(stack: ExitStack, name: str) -> None:
    release, ports = PEERS[name]
    password = secrets.token_urlsafe(12)
    fqdn = f"expressway-{name}.example.com"
    peer = DeviceEmulator("expressway-e", release, "admin", password, fqdn=fqdn, ports=ports)
    stack.enter_context(peer)
    _write(f"{name}-password", password.encode())
    _write(f"{name}-interface-ca.pem", peer.ca_pem, 0o644)
    print(f"emulated Expressway-E {release} '{name}' on https://127.0.0.1:{ports[0]}")


def main() -> int:
    # Pebble forgets everything when it stops, so the demo's state from an earlier run
    # refers to an account and certificates no CA knows any more: start afresh.
    shutil.rmtree(ROOT / "state" / "demo", ignore_errors=True)
    FILES.mkdir(mode=0o700, parents=True, exist_ok=True)
    with ExitStack() as stack:
        pebble = PebbleServer(PebbleConfig(version="2.4", http_port=5002), api_port=14000)
        stack.enter_context(pebble)
        _write("pebble-api.pem", pebble.ca_file.read_bytes(), 0o644)
        _write("pebble-root.pem", pebble.roots_pem(0).encode(), 0o644)
        print(f"Pebble {pebble.package_version} is answering at {pebble.directory_url}")
        for name in PEERS:
            _start_peer(stack, name)
        print(flush=True)
        renewed = _run("renew")
        print()
        status = _run("status")
    return renewed or status


if __name__ == "__main__":
    sys.exit(main())
