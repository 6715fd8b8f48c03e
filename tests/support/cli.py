"""Types for running the command line from tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass
class CliResult:
    code: int
    out: str
    err: str


class Cli(Protocol):
    def __call__(self, *args: str) -> CliResult: ...
