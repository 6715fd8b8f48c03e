"""Fixtures shared by the whole suite: real Pebble servers and the command line."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.cli import Cli, CliResult
from support.pebble import PebbleConfig, PebbleServer

from vcs_acme.cli import main


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run ``vcs-acme`` in this process and return exit status, stdout and stderr."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def pebble() -> Iterator[PebbleServer]:
    """Pebble 2.10 as the tests' CA: ARI, profiles, serverAuth-only leaves."""
    with PebbleServer(PebbleConfig(version="2.10")) as server:
        yield server
