"""Print .env.example with every empty secret filled with a fresh random value.

    python3 deploy/new_env.py > .env && chmod 600 .env
    python3 deploy/new_env.py --picsweb postgres > .env   # the demo-postgres profile's PICSWeb

For the demo profile, or a first start on one machine. In production the customer token and
the PICSWeb password come from OneFile and the DBA: put them in .env by hand after this.
Standard library only (runs on the host, before any image is built).
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"


def _sql_server_password() -> str:
    # SQL Server wants 8+ characters of three kinds (upper, lower, digits, symbols).
    return secrets.token_urlsafe(18) + "-Aa1"


# Each secret of .env.example and how it is made (the recipes its comments give).
GENERATORS: dict[str, Callable[[], str]] = {
    "AIRFLOW_DB_PASSWORD": lambda: secrets.token_hex(24),
    "AIRFLOW_FERNET_KEY": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
    "AIRFLOW_JWT_SECRET": lambda: secrets.token_urlsafe(32),
    "AIRFLOW_API_SECRET_KEY": lambda: secrets.token_urlsafe(32),
    "AIRFLOW_ADMIN_PASSWORD": lambda: secrets.token_urlsafe(18),
    "SYNC_NOTE_PASSWORD": lambda: secrets.token_urlsafe(18),
    "ONEFILE_CUSTOMER_TOKEN": lambda: secrets.token_hex(16),
    "PICSWEB_DB_PASSWORD": _sql_server_password,
    "MSSQL_SA_PASSWORD": _sql_server_password,
    "PICSWEB_DEMO_POSTGRES_PASSWORD": lambda: secrets.token_hex(24),
}
# `--picsweb postgres`: the PICSWeb connection pointed at the demo-postgres profile's server.
POSTGRES_PICSWEB = {
    "PICSWEB_DB_CONN_TYPE": "postgres",
    "PICSWEB_DB_HOST": "picsweb-postgres",
    "PICSWEB_DB_PORT": "5432",
}
_ASSIGNMENT = re.compile(r"^(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def filled(example: str, overrides: dict[str, str] | None = None) -> str:
    """``example`` with each empty secret given a generated value and the ``overrides``
    set; everything else kept."""
    overrides = overrides or {}
    lines = []
    for line in example.splitlines():
        match = _ASSIGNMENT.match(line)
        if match and match["key"] in overrides:
            line = f"{match['key']}={overrides[match['key']]}"
        elif match and not match["value"] and match["key"] in GENERATORS:
            line = f"{match['key']}={GENERATORS[match['key']]()}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", type=Path, default=EXAMPLE)
    parser.add_argument(
        "--picsweb",
        choices=("mssql", "postgres"),
        default="mssql",
        help="the demo PICSWeb's server: SQL Server (profile demo) or PostgreSQL (demo-postgres)",
    )
    args = parser.parse_args(argv)
    overrides = POSTGRES_PICSWEB if args.picsweb == "postgres" else {}
    sys.stdout.write(filled(args.example.read_text(), overrides))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
