"""The demo builder: what every demo builds, one way, for both entry points that build one.

``python -m sync_demo`` (:mod:`sync_demo.cli`: ``make demo`` and ``--serve``) and the compose
profile's ``deploy/picsweb_demo.py`` both generate a OneFile customer and its matching
PICSWeb from one seed and day, load that PICSWeb into a database, and serve the OneFile
side from the simulator with a few malformed rows until SIGINT or SIGTERM. The pieces they
share live here: the demo's shape (the simulator's own defaults), the dataset, the
PICSWeb's tables and rows loaded, the hosted simulator and its spoiled rows, the wait for
a stop signal, and the error a user fixes, said without a traceback. What differs stays
with each entry point: where the settings come from (flags, or the compose file's
environment), and when a database is refused, emptied or rebuilt.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Mapping
from datetime import date

import sqlalchemy as sa

# The same as the simulator's own command line (python -m onefile_simulator).
DEFAULT_SEED = 7
DEFAULT_ORGANISATIONS = 2
DEFAULT_LEARNERS = 25
DEFAULT_PORT = 8099


class DemoError(Exception):
    """Something the user can fix (a setting in .env, a database with data, a port in use):
    said plainly, not traced (:func:`said_plainly`)."""


def said_plainly(work: Callable[[], int]) -> int:
    """``work()``'s exit code, or 2 with ``error: ...`` on stderr when it raises
    :class:`DemoError`."""
    try:
        return work()
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2


def demo_dataset(*, seed: int, organisations: int, learners: int, today: date):
    """The generator's OneFile customer and matching PICSWeb, reviews scheduled around
    ``today``: the same seed, shape and day give the same data on both sides."""
    from onefile_simulator import generate_dataset

    return generate_dataset(seed=seed, organisations=organisations, learners=learners, today=today)


# ----- the demo PICSWeb -----------------------------------------------------------------------
def load_demo_picsweb(engine: sa.Engine, rows: Mapping[str, list[dict]]) -> dict[str, int]:
    """Create the PICSWeb tables (where missing) and load ``rows``; returns rows per table."""
    from sync_demo.picsweb_db import create_picsweb_tables, load_picsweb_rows

    create_picsweb_tables(engine)
    return load_picsweb_rows(engine, rows)


def loaded_text(loaded: Mapping[str, int]) -> str:
    """``"3 organisation, 50 trainee, ..."``: the rows loaded per table, as the demos say it."""
    return ", ".join(f"{n} {table}" for table, n in loaded.items())


def error_reason(exc: BaseException) -> str:
    """A database error's first line, in the driver's words (not SQLAlchemy's wrapping)."""
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


# ----- the OneFile simulator ------------------------------------------------------------------
def hosted_simulator(data, *, host: str, port: int, customer_token: str):
    """A OneFileSimulator listening on ``host`` (e.g. 0.0.0.0: reachable from the other
    containers)."""
    from onefile_simulator import OneFileSimulator

    return OneFileSimulator(data, customer_token=customer_token, port=port, host=host)


def spoil_some_rows(sim) -> None:
    """A few malformed OneFile rows, as a real API sometimes sends: they are set aside with
    their reason while the rest of the run goes on, and merged once they come back intact."""
    sim.faults.malformed_rows("LearningAim", kinds=("bad_date", "text_number"))
    sim.faults.malformed_rows("Review", kinds=("missing_id",))


def stop_on_signals() -> threading.Event:
    """An event SIGINT and SIGTERM set from now on (a served demo stops cleanly on either)."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def serve_until(stop: threading.Event) -> None:
    """Wait, serving, until ``stop`` is set."""
    while not stop.wait(0.5):
        pass
