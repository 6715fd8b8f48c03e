"""Software releases of VCS and Expressway appliances, as comparable values.

Cisco names a release ``X<major>.<minor>`` with an optional maintenance number, for example
``X8.11.4``, ``X14.3.2`` or ``X15.4``. A missing maintenance number counts as zero, so
``X15.4`` and ``X15.4.0`` are the same release and ``X15.4.1`` comes after both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_RELEASE_PATTERN = re.compile(r"[Xx](\d{1,3})\.(\d{1,3})(?:\.(\d{1,3}))?")


@dataclass(frozen=True, order=True)
class Release:
    """One software release; instances order the way the releases were published."""

    major: int
    minor: int
    maintenance: int = 0
    text: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str) -> Release:
        """Read a release string such as ``X14.3.2``; raise ``ValueError`` for anything else."""
        match = _RELEASE_PATTERN.fullmatch(text.strip())
        if match is None:
            raise ValueError(
                f"software release {text!r} is not of the form X<major>.<minor>[.<maintenance>],"
                " for example X14.3.2 or X15.4"
            )

        major, minor, maintenance = match.groups()
        return cls(int(major), int(minor), int(maintenance or 0), text.strip().upper())

    def at_least(self, text: str) -> bool:
        """True when this release is the given one or a later one."""
        return self >= Release.parse(text)

    def __str__(self) -> str:
        return self.text or f"X{self.major}.{self.minor}.{self.maintenance}"
