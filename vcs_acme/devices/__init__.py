"""The appliances the agent serves: their releases and the rules they apply to certificates."""

from vcs_acme.devices.release import Release
from vcs_acme.devices.rules import (
    DeviceProfile,
    Finding,
    Role,
    Verdict,
    check_bundle,
    needs_client_auth,
)

__all__ = [
    "DeviceProfile",
    "Finding",
    "Release",
    "Role",
    "Verdict",
    "check_bundle",
    "needs_client_auth",
]
