"""``scfleet serve`` and ``scfleet accounts seed``.

Imports of aiohttp/numpy happen inside the handlers so ``scfleet --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reference_server.config import add_server_arguments
from scfleet_core.cli import Subparsers, int_in
from scfleet_core.limits import MAX_ACCOUNTS


def _serve(args: argparse.Namespace) -> int:
    from reference_server.config import config_from_args
    from reference_server.server import serve

    return serve(config_from_args(args))


def _seed(args: argparse.Namespace) -> int:
    from reference_server.accounts import seed_accounts

    cost = {} if args.scrypt_n is None else {"scrypt_n": args.scrypt_n}
    seed_accounts(args.data_dir, args.count, args.csv, prefix=args.prefix, seed=args.seed, **cost)
    # Never echo passwords: they live only in the CSV.
    sys.stdout.write(
        f"seeded {args.count} accounts in {args.data_dir}; credentials in {args.csv}\n"
    )
    return 0


def _power_of_two(text: str) -> int:
    from reference_server.accounts import MAX_SCRYPT_N

    value = int_in(1)(text)
    if value < 2 or value & (value - 1) or value > MAX_SCRYPT_N:
        raise argparse.ArgumentTypeError(
            f"must be a power of two in 2..{MAX_SCRYPT_N} (1 GiB per hash), got {value}"
        )
    return value


def register(subparsers: Subparsers) -> None:
    """Add ``serve`` and ``accounts`` to the ``scfleet`` switchboard."""
    serve = subparsers.add_parser(
        "serve",
        help="run the SignalCraft-compatible reference server in the foreground",
        description="Run the reference server until Ctrl-C; prints 'READY http://HOST:PORT'.",
    )
    add_server_arguments(serve)
    serve.set_defaults(func=_serve)

    accounts = subparsers.add_parser("accounts", help="manage the reference server's test accounts")
    acc_sub = accounts.add_subparsers(dest="accounts_command", metavar="ACTION")
    acc_sub.required = True
    seed = acc_sub.add_parser(
        "seed",
        help="create N test users with random passwords and write username,password to a CSV",
    )
    seed.add_argument("--data-dir", type=Path, required=True, help="the server's data dir")
    seed.add_argument(
        "--count",
        type=int_in(1, MAX_ACCOUNTS),
        required=True,
        help=f"number of accounts, at most {MAX_ACCOUNTS:,} (all or none are stored)",
    )
    seed.add_argument("--csv", type=Path, required=True, help="CSV to write (mode 0600)")
    seed.add_argument("--prefix", default="loadtest", help="username prefix (default %(default)s)")
    seed.add_argument(
        "--seed", type=int, default=None, help="make the credentials reproducible (test data)"
    )
    seed.add_argument(
        "--scrypt-n",
        type=_power_of_two,
        default=None,
        help="scrypt cost N (default 16384); lower is faster to seed and to log in",
    )
    seed.set_defaults(func=_seed)
