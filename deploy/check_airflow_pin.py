"""Build step of the Dockerfile: stop the build when the image's Airflow is not the pinned one.

    python deploy/check_airflow_pin.py /opt/airflow/project/requirements.txt

The Dockerfile's base image (AIRFLOW_BASE_IMAGE) and requirements.txt must move together.
A file rather than a heredoc in the Dockerfile: the classic builder (Docker 20.10 without
BuildKit, Podman's older builds) reads no heredocs.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import version
from pathlib import Path


def main(argv: list[str]) -> int:
    pins = Path(argv[1] if len(argv) > 1 else "requirements.txt").read_text()
    pinned = re.search(r"^apache-airflow==(\S+)", pins, re.M).group(1)
    installed = version("apache-airflow")
    if installed != pinned:
        raise SystemExit(
            f"requirements.txt pins apache-airflow=={pinned} but the image has {installed}: "
            "change AIRFLOW_BASE_IMAGE in the Dockerfile and the pins together"
        )
    print(f"apache-airflow {installed}, as pinned")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
