"""Serve a generated dataset by hand: `python -m onefile_simulator --seed 7 --port 8099`.

The defaults are the demo's (`python -m sync_demo`): seed 7, 2 organisations of 25
learners, the reviews scheduled around today's UK date (`--today` picks another day), so
both serve the same OneFile customer. To get the matching PICSWeb as well, run
`python -m sync_demo --picsweb-url URL --serve` instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import threading
from zoneinfo import ZoneInfo

from onefile_simulator.generator import generate_dataset
from onefile_simulator.server import PAGE_CAP_OFFSETS, OneFileSimulator

UK = ZoneInfo("Europe/London")
DEFAULT_SEED = 7
DEFAULT_ORGANISATIONS = 2
DEFAULT_LEARNERS = 25
DEFAULT_PORT = 8099


def uk_today() -> dt.date:
    """Today's date in the UK, where OneFile's customers schedule their reviews."""
    return dt.datetime.now(UK).date()


def day(text: str) -> dt.date:
    """An argparse type: a YYYY-MM-DD date."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m onefile_simulator",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--organisations", type=int, default=DEFAULT_ORGANISATIONS)
    parser.add_argument("--learners", type=int, default=DEFAULT_LEARNERS, help="per organisation")
    parser.add_argument(
        "--today",
        type=day,
        default=None,
        metavar="YYYY-MM-DD",
        help="the day the reviews are scheduled around (default: today's UK date)",
    )
    parser.add_argument("--customer-token", default="sim-customer-token")
    parser.add_argument(
        "--quote-token", action="store_true", help="answer /Authentication with a JSON string"
    )
    parser.add_argument("--rate-limit", type=int, default=300, help="calls per minute")
    parser.add_argument(
        "--page-size-cap",
        type=int,
        default=None,
        metavar="ROWS",
        help="serve at most ROWS rows a search page whatever size is asked for (default: no cap)",
    )
    parser.add_argument(
        "--page-cap-offset",
        choices=PAGE_CAP_OFFSETS,
        default="asked",
        help="where a capped page starts: at (page-1) x the size asked for, or x the cap",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Generate a dataset, serve it on 127.0.0.1 and wait for Ctrl-C (or SIGTERM)."""
    args = build_parser().parse_args(argv)
    today = args.today or uk_today()
    dataset = generate_dataset(
        seed=args.seed, organisations=args.organisations, learners=args.learners, today=today
    )
    sim = OneFileSimulator(
        dataset.onefile,
        customer_token=args.customer_token,
        rate_limit=(args.rate_limit, 60.0),
        quote_token=args.quote_token,
        port=args.port,
        page_size_cap=args.page_size_cap,
        page_cap_offset=args.page_cap_offset,
    )
    stop = threading.Event()
    with sim:
        print(f"OneFile simulator at {sim.base_url}", flush=True)
        print(f"customer token: {sim.customer_token} (a simulator value, not a secret)", flush=True)
        print(
            "organisations: " + ", ".join(str(o["ID"]) for o in dataset.onefile.organisations),
            flush=True,
        )
        print(f"reviews scheduled around {today.isoformat()} (30 days either side)", flush=True)
        if args.page_size_cap is not None:
            print(
                f"search pages capped at {args.page_size_cap} rows "
                f"(offsets by the {args.page_cap_offset} size)",
                flush=True,
            )
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        while not stop.wait(0.5):
            pass
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
