"""Serve a generated dataset by hand: `python -m onefile_simulator --seed 7 --port 8099`."""

from __future__ import annotations

import argparse
import threading

from onefile_simulator.generator import generate_dataset
from onefile_simulator.server import OneFileSimulator


def main(argv: list[str] | None = None) -> None:
    """Generate a dataset, serve it on 127.0.0.1 and wait for Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m onefile_simulator", description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--organisations", type=int, default=2)
    parser.add_argument("--learners", type=int, default=20, help="per organisation")
    parser.add_argument("--customer-token", default="sim-customer-token")
    parser.add_argument(
        "--quote-token", action="store_true", help="answer /Authentication with a JSON string"
    )
    parser.add_argument("--rate-limit", type=int, default=300, help="calls per minute")
    args = parser.parse_args(argv)
    dataset = generate_dataset(
        seed=args.seed, organisations=args.organisations, learners=args.learners
    )
    sim = OneFileSimulator(
        dataset.onefile,
        customer_token=args.customer_token,
        rate_limit=(args.rate_limit, 60.0),
        quote_token=args.quote_token,
        port=args.port,
    )
    with sim:
        print(f"OneFile simulator at {sim.base_url}", flush=True)
        print(f"customer token: {sim.customer_token} (a simulator value, not a secret)", flush=True)
        print(
            "organisations: " + ", ".join(str(o["ID"]) for o in dataset.onefile.organisations),
            flush=True,
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopped", flush=True)


if __name__ == "__main__":
    main()
