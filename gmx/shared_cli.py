"""``gmx audit`` and ``gmx hash-password``: the administrator's commands of a shared server.

    gmx audit [--db FILE] [--since 2026-11-29] [--user alice] [--format csv|json]
    gmx hash-password [--user alice]        (alias: gmx passwd)

Wire into ``gmx.cli.build_parser`` with ``add_parser(sub)``. See ``docs/shared.md``.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path

log = logging.getLogger("gmx")

#: Output formats of ``gmx audit`` (the first is the default).
AUDIT_FORMATS = ("csv", "json")


def cmd_audit(args: argparse.Namespace) -> int:
    """Write the audit log's rows (filtered) to stdout."""
    from gmx.audit import AuditLog, entries_csv, entries_json, parse_since
    from gmx.shared import load_shared_config

    path = args.db
    if path is None:
        shared = load_shared_config()
        if shared.audit_log is None:
            raise ValueError(
                "no audit log: name it with --db, or set GMX_CONFIG to the app's configuration file"
            )
        path = shared.audit_log
    since = parse_since(args.since) if args.since else None
    entries = AuditLog(path, create=False).entries(since=since, user=args.user)
    text = entries_csv(entries) if args.format == "csv" else entries_json(entries) + "\n"
    sys.stdout.write(text)
    log.info("%d analyses in %s", len(entries), path)
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New password: ")
        if getpass.getpass("Repeat it: ") != password:
            raise ValueError("the two passwords differ; nothing was written")
    if not password:
        raise ValueError("the password is empty")
    return password


def cmd_hash_password(args: argparse.Namespace) -> int:
    """Ask for a password (twice; or one line from stdin) and print its hash for ``[signin.users]``."""
    from gmx.passwords import hash_password

    digest = hash_password(_read_password(args))
    if args.user:
        sys.stdout.write(f'{_toml_key(args.user)} = "{digest}"\n')
    else:
        sys.stdout.write(digest + "\n")
    return 0


def _toml_key(name: str) -> str:
    bare = name.replace("-", "").replace("_", "")
    if bare.isascii() and bare.isalnum():
        return name
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``audit`` and ``hash-password`` to ``gmx``'s subcommands."""
    p = sub.add_parser(
        "audit", help="who analysed which photo (SHA-256), when, with which models (shared app)"
    )
    p.add_argument(
        "--db",
        type=Path,
        default=None,
        help="the audit log (default: [shared] audit_log of the GMX_CONFIG file)",
    )
    p.add_argument(
        "--since", default=None, help="only analyses from this UTC date/time on, e.g. 2026-11-29"
    )
    p.add_argument("--user", default=None, help="only this user's analyses")
    p.add_argument("--format", choices=list(AUDIT_FORMATS), default=AUDIT_FORMATS[0])
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser(
        "hash-password",
        aliases=["passwd"],
        help="hash a password for [signin.users] of the shared app's configuration",
    )
    p.add_argument("--user", default=None, help='print a ready TOML line: NAME = "<hash>"')
    p.add_argument(
        "--stdin",
        action="store_true",
        help="read the password from the first line of stdin (no prompt; for scripts)",
    )
    p.set_defaults(func=cmd_hash_password)
