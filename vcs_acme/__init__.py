"""vcs-acme: keeps Cisco VCS and Expressway appliances supplied with ACME certificates."""

__version__ = "0.1.0"
