"""The ``vcs-acme`` command.

Exit status: 0 all went well; 1 a certificate (or a check) failed; 2 wrong usage;
78 the configuration is invalid (EX_CONFIG of sysexits.h); 70 an internal error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar

from vcs_acme import __version__, config
from vcs_acme.config import CertificateSettings, Settings
from vcs_acme.errors import ConfigError, VcsAcmeError

if TYPE_CHECKING:
    from vcs_acme.pipeline import Result

logger = logging.getLogger("vcs_acme")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SOFTWARE = 70
EXIT_CONFIG = 78

Command = Callable[[argparse.Namespace, Settings], int]


class UsageError(Exception):
    """The command line names something that does not exist."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vcs-acme",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Keep Cisco VCS and Expressway appliances supplied with certificates from an
            ACME CA (Let's Encrypt, ZeroSSL, or a private CA with External Account Binding).

            Start with `vcs-acme check` to test the configuration and the CA, then
            `vcs-acme renew` to obtain what is due, and `vcs-acme status` to see where
            every certificate stands."""
        ),
        epilog=textwrap.dedent(
            """\
            The configuration is read from --config, else $VCS_ACME_CONFIG, else
            /etc/vcs-acme/config.toml; config/example.toml documents every key.
            Exit status: 0 success, 1 a certificate failed, 2 wrong usage,
            78 invalid configuration."""
        ),
    )
    parser.add_argument("--version", action="version", version=f"vcs-acme {__version__}")
    parser.add_argument("--config", metavar="PATH", help="configuration file (TOML)")
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=None,
        help="how much to log on standard error (default: info for run, warning otherwise; "
        "debug shows the ACME exchange, never a secret)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text (default; under systemd without timestamps, with syslog priorities) or json: "
        "one object per line with time, level, logger, message, for log shippers",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_run(commands)
    _add_renew(commands)
    _add_deploy(commands)
    _add_status(commands)
    _add_check(commands)
    _add_history(commands)
    return parser


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "run",
        help="run as a daemon: renew and deploy on schedule (systemd Type=notify)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Keep every configured certificate renewed and deployed, unattended. Each
            certificate is worked at its next decision time (the CA's renewal window, else
            the lifetime rule), failures are retried with growing delays, devices are
            checked for drift periodically. The schedule is rebuilt from the state folder
            at start. SIGHUP reloads the configuration; SIGTERM stops gracefully."""
        ),
        epilog="usually started by systemd: see systemd/vcs-acme.service",
    )
    run.set_defaults(handler=_run)


def _add_renew(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    renew = commands.add_parser(
        "renew",
        help="obtain every certificate that is due (one pass)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            One pass over the configured certificates: each that is due (the CA's renewal
            information first, else when a third of its lifetime is left, or at once when
            its configuration changed) is ordered, validated, and stored as a new version.
            Certificates not due are left alone. One certificate's failure does not stop
            the others; the exit status is 1 when any failed."""
        ),
        epilog="examples:\n  vcs-acme renew\n  vcs-acme renew --force expressway-e\n"
        "  vcs-acme renew --dry-run",
    )
    renew.add_argument("names", nargs="*", metavar="NAME", help="only these certificates")
    renew.add_argument("--json", action="store_true", help="print one JSON document at the end")
    renew.add_argument("--force", action="store_true", help="renew even when not due")
    renew.add_argument(
        "--dry-run",
        action="store_true",
        help="do the whole ACME exchange but store nothing (the state folder stays as it is)",
    )
    renew.set_defaults(handler=_renew)


def _add_deploy(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    deploy = commands.add_parser(
        "deploy",
        help="deploy the current version of certificates to their devices again",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Upload each certificate's current version to its devices (one device at a
            time), restart them when their restart policy allows, and verify over TLS that
            every verify port presents it. Nothing is issued. A device whose upload waits
            for its maintenance window is only restarted and verified."""
        ),
        epilog="examples:\n  vcs-acme deploy\n  vcs-acme deploy expressway-e --device exp-e-2",
    )
    deploy.add_argument("names", nargs="*", metavar="NAME", help="only these certificates")
    deploy.add_argument("--json", action="store_true", help="print one JSON document at the end")
    deploy.add_argument(
        "--device", action="append", default=[], metavar="D", help="only this device (repeatable)"
    )
    deploy.set_defaults(handler=_deploy)


def _add_status(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = commands.add_parser(
        "status",
        help="show every certificate's version, expiry and next renewal",
        description="Show where every configured certificate stands. Reads the state "
        "folder only: it works while the CA is unreachable.",
    )
    status.add_argument("--json", action="store_true", help="print JSON for scripts")
    status.set_defaults(handler=_status)


def _add_check(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser(
        "check",
        help="check the configuration and that the CA answers",
        description="Check the configuration, the state folder, and the CA: its directory "
        "is read with the configured trust, and what it offers (profiles, renewal "
        "information, EAB) is compared with the configuration. Changes nothing.",
    )
    check.set_defaults(handler=_check)


def _add_history(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    recorded = commands.add_parser(
        "history",
        help="list past renewal attempts and deployments, newest first",
        description="List what the agent did, newest first: every renewal attempt, device "
        "check and deployment, with its outcome and reason. Reads the state folder only.",
    )
    recorded.add_argument("names", nargs="*", metavar="NAME", help="only these certificates")
    recorded.add_argument("--limit", type=int, default=50, help="how many entries (default 50)")
    recorded.add_argument("--json", action="store_true", help="print JSON for scripts")
    recorded.set_defaults(handler=_history)


def _selected(settings: Settings, names: Sequence[str]) -> list[CertificateSettings]:
    if not names:
        return list(settings.certificates)
    known = {c.name for c in settings.certificates}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(
            f"no certificate named {', '.join(unknown)} in {settings.source} "
            f"(configured: {', '.join(sorted(known)) or 'none'})"
        )
    return [settings.certificate(n) for n in names]


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from vcs_acme.daemon import Daemon

    del args
    return Daemon(settings.source, settings).run()


def _renew(args: argparse.Namespace, settings: Settings) -> int:
    from vcs_acme.pipeline import Pass
    from vcs_acme.report import Progress

    certificates = _selected(settings, args.names)
    work = Pass(settings, force=args.force, dry_run=args.dry_run)
    progress = Progress(len(certificates), as_json=args.json, dry_run=args.dry_run)
    tell = _teller(settings, quiet=args.dry_run)
    results = [tell(progress.show(work.run([c])[0])) for c in certificates]
    progress.finish(results)
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def _teller(settings: Settings, *, quiet: bool) -> Callable[[Result], Result]:
    """Send the alerts a pass calls for (none for a dry run), returning the result."""
    from vcs_acme.aftermath import after_pass
    from vcs_acme.alerts import Alerter

    alerter = Alerter(settings.alerts, settings.state_dir)

    def tell(result: Result) -> Result:
        if not quiet:
            after_pass(settings, result, alerter=alerter, now=dt.datetime.now(dt.UTC))
        return result

    return tell


def _deploy(args: argparse.Namespace, settings: Settings) -> int:
    from vcs_acme.pipeline import Pass
    from vcs_acme.report import Progress

    certificates = _selected(settings, args.names)
    known = {d.name for d in settings.devices}
    unknown = [d for d in args.device if d not in known]
    if unknown:
        raise UsageError(f"no device named {', '.join(unknown)} in {settings.source}")
    if args.device:
        certificates = [c for c in certificates if set(c.devices) & set(args.device)]
    work = Pass(settings, only_devices=tuple(args.device))
    progress = Progress(len(certificates), as_json=args.json)
    tell = _teller(settings, quiet=False)
    results = [tell(progress.show(work.deploy([c])[0])) for c in certificates]
    progress.finish(results)
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from vcs_acme.report import status_rows, status_table

    rows = status_rows(settings)
    if args.json:
        print(json.dumps({"certificates": rows}, indent=2))
    else:
        print(status_table(rows))
    return EXIT_OK


def _history(args: argparse.Namespace, settings: Settings) -> int:
    from vcs_acme.report import history_rows, history_table

    _selected(settings, args.names)  # unknown names are a usage error
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    rows = history_rows(settings, args.names, args.limit)
    print(json.dumps({"entries": rows}, indent=2) if args.json else history_table(rows))
    return EXIT_OK


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from vcs_acme.preflight import run_checks

    del args
    return EXIT_OK if run_checks(settings) else EXIT_FAILED


class _JournalFormatter(logging.Formatter):
    """systemd's journal adds the time itself; it reads the priority from ``<N>``."""

    PRIORITIES: ClassVar[dict[int, int]] = {
        logging.DEBUG: 7,
        logging.INFO: 6,
        logging.WARNING: 4,
        logging.ERROR: 3,
    }

    def format(self, record: logging.LogRecord) -> str:
        priority = self.PRIORITIES.get(record.levelno, 2)
        return f"<{priority}>{super().format(record)}"


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, with fixed field names."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.levelno <= logging.DEBUG:
            document["traceback"] = self.formatException(record.exc_info)
        return json.dumps(document)


def _setup_logging(level: str, form: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if form == "json":
        handler.setFormatter(_JsonFormatter())
    elif os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(handler)
    root.setLevel(level.upper())
    # The libraries' own chatter stays at warning unless debugging.
    for name in ("urllib3", "apscheduler", "paramiko"):
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _setup_logging(
        args.log_level or ("info" if args.command == "run" else "warning"), args.log_format
    )
    handler: Command = args.handler
    try:
        settings = config.load(config.config_path(args.config))
        return handler(args, settings)
    except ConfigError as error:
        print(f"vcs-acme: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except UsageError as error:
        print(f"vcs-acme: {error}", file=sys.stderr)
        return EXIT_USAGE
    except VcsAcmeError as error:
        print(f"vcs-acme: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("vcs-acme: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        logger.debug("internal error", exc_info=True)
        print(
            f"vcs-acme: internal error: {type(error).__name__}: {error} "
            "(run with --log-level debug for the details, and report it)",
            file=sys.stderr,
        )
        return EXIT_SOFTWARE
