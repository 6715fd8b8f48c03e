"""A small, strict reader over parsed TOML that knows where every value came from.

Every problem becomes a :class:`~vcs_acme.errors.ConfigError` naming the file, the key path
(``certificate[2].domains[0]``) and what was expected. Unknown keys are errors, with a
suggestion when a known key is close, so that a typo never silently turns a setting off.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from vcs_acme.errors import ConfigError
from vcs_acme.secrets import SOURCES, Secret, SecretSourceError, read_secret

T = TypeVar("T")

_TYPE_NAMES = {
    str: "a string",
    bool: "true or false",
    int: "an integer",
    float: "a number",
    list: "a list",
    dict: "a table",
}


def type_name(value: object) -> str:
    """How a TOML value's type is called in messages."""
    for kind, name in _TYPE_NAMES.items():
        if type(value) is kind:
            return name
    return type(value).__name__


class Table:
    """One TOML table with its key path; records which keys were read."""

    def __init__(self, data: dict[str, Any], source: str, path: str = "") -> None:
        self.data = data
        self.source = source
        self.path = path
        self._seen: set[str] = set()

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.source, self.key_path(key), message)

    def has(self, key: str) -> bool:
        return key in self.data

    def _get(self, key: str, kind: type[T], required: bool, what: str) -> T | None:
        self._seen.add(key)
        if key not in self.data:
            if required:
                raise self.error(key, f"missing; expected {what}")
            return None
        value = self.data[key]
        # bool is an int in Python; TOML keeps them apart, and so do we.
        exact = type(value) is kind or (kind is float and type(value) is int)
        if not exact:
            raise self.error(key, f"expected {what}, got {type_name(value)}")
        return value  # type: ignore[no-any-return]

    def string(self, key: str, *, required: bool = False, what: str = "a string") -> str | None:
        value = self._get(key, str, required, what)
        if value is not None and not value.strip():
            raise self.error(key, f"must not be empty; expected {what}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, bool, False, "true or false")
        return default if value is None else value

    def number(self, key: str, *, minimum: float, maximum: float) -> float | None:
        value = self._get(key, float, False, "a number")
        if value is None:
            return None
        if not minimum <= value <= maximum:
            raise self.error(key, f"expected a number from {minimum:g} to {maximum:g}, got {value}")
        return float(value)

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        what = "one of " + ", ".join(f'"{c}"' for c in choices)
        value = self._get(key, str, False, what)
        if value is None:
            return default
        if value not in choices:
            raise self.error(key, f'expected {what}, got "{value}"')
        return value

    def strings(self, key: str, *, required: bool = False) -> list[str] | None:
        values = self._get(key, list, required, "a list of strings")
        if values is None:
            return None
        for index, item in enumerate(values):
            if type(item) is not str:
                raise self.error(f"{key}[{index}]", f"expected a string, got {type_name(item)}")
        return values

    def table(self, key: str, *, required: bool = False) -> Table | None:
        value = self._get(key, dict, required, "a table")
        if value is None:
            return None
        return Table(value, self.source, self.key_path(key))

    def tables(self, key: str) -> Iterator[Table]:
        values = self._get(key, list, False, "an array of tables ([[...]])") or []
        for index, item in enumerate(values):
            path = f"{self.key_path(key)}[{index}]"
            if type(item) is not dict:
                raise ConfigError(self.source, path, f"expected a table, got {type_name(item)}")
            yield Table(item, self.source, path)

    def convert(self, key: str, value: T, check: Callable[[T], None]) -> T:
        """Run ``check`` on a value read from ``key``; its ValueError becomes a ConfigError."""
        try:
            check(value)
        except ValueError as problem:
            raise self.error(key, str(problem)) from None
        return value

    def finish(self) -> None:
        """Refuse keys nobody read: they are typos or settings of another version."""
        for key in self.data:
            if key in self._seen:
                continue
            hint = difflib.get_close_matches(key, sorted(self._seen), n=1)
            suggestion = f'; did you mean "{hint[0]}"?' if hint else ""
            known = ", ".join(sorted(self._seen))
            raise self.error(key, f"unknown key{suggestion} (known here: {known})")

    def integers(self, key: str, *, minimum: int, maximum: int) -> list[int] | None:
        values = self._get(key, list, False, "a list of integers")
        if values is None:
            return None
        if not values:
            raise self.error(key, "expected at least one integer")
        for index, item in enumerate(values):
            if type(item) is not int or not minimum <= item <= maximum:
                raise self.error(
                    f"{key}[{index}]",
                    f"expected an integer from {minimum} to {maximum}, got {item!r}",
                )
        return values


def relative_path(config_file: Path, text: str) -> Path:
    # Relative paths are taken from the configuration file's folder, so that a checkout's
    # demo configuration keeps its state inside the checkout wherever it is run from.
    candidate = Path(text).expanduser()
    return candidate if candidate.is_absolute() else (config_file.parent / candidate).resolve()


def secret(table: Table, key: str) -> Secret:
    """Read a secret named by ``{ file = … }``, ``{ env = … }``, ``{ credential = … }``."""
    what = "a table with one of " + ", ".join(SOURCES)
    reference = table.table(key, required=True)
    assert reference is not None
    given = [source for source in SOURCES if reference.has(source)]
    if len(given) != 1:
        raise table.error(key, f"expected {what} (exactly one), got {len(given)}")
    value = reference.string(given[0], required=True)
    assert value is not None
    reference.finish()
    if given[0] == "file":
        value = str(relative_path(Path(table.source), value))
    try:
        return read_secret(given[0], value)
    except SecretSourceError as problem:
        raise table.error(f"{key}.{given[0]}", str(problem)) from None
