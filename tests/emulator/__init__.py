"""Test stand-ins for the appliance: a strict device emulator and a small certificate factory."""
