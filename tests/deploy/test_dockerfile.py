"""The Dockerfile extends the official Airflow image with the project's pins (from
requirements.txt with constraints.txt, never _PIP_ADDITIONAL_REQUIREMENTS) and makes
include/ and plugins/ importable as the tests and scripts/install.sh do."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.deploy.scripts import REPO

DOCKERFILE = REPO / "Dockerfile"


@pytest.fixture(scope="module")
def instructions() -> str:
    """The Dockerfile without its comment lines, continued lines joined."""
    lines = DOCKERFILE.read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    return re.sub(r"\\\n\s*", " ", text)


def _pinned(package: str) -> str:
    text = (REPO / "requirements.txt").read_text()
    return re.search(rf"^{re.escape(package)}==(\S+)", text, re.M).group(1)


def test_it_extends_the_official_image_of_the_pinned_airflow_and_python(instructions):
    base = re.search(r"^ARG AIRFLOW_BASE_IMAGE=(\S+)$", instructions, re.M).group(1)
    assert re.search(r"^FROM \$\{AIRFLOW_BASE_IMAGE\}$", instructions, re.M)
    target = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["ruff"]["target-version"]
    python = f"{target[2]}.{target[3:]}"  # py311 -> 3.11, the venv's and constraints' Python
    assert base == f"apache/airflow:{_pinned('apache-airflow')}-python{python}"


def test_it_installs_the_requirements_with_the_constraints(instructions):
    install = re.search(r"^RUN [^\n]*pip install[^\n]*", instructions, re.M).group(0)
    assert "-r /opt/airflow/project/requirements.txt" in install
    assert "-c /opt/airflow/project/constraints.txt" in install
    copy = "COPY --chown=airflow:0 requirements.txt constraints.txt /opt/airflow/project/"
    assert copy in instructions
    # The optional CA bundle of a TLS-inspecting proxy: for pip's step only.
    assert "build-ca.pe[m]" in instructions and "export PIP_CERT=" in install
    assert "rm -f /opt/airflow/project/build-ca.pem" in install


def test_it_never_installs_at_container_start(instructions):
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in instructions
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in (REPO / "docker-compose.yaml").read_text()


def test_the_build_stops_when_the_image_and_the_pins_disagree(instructions):
    # A script, not a heredoc: the classic builder (Docker 20.10 without BuildKit) has none.
    assert "<<" not in instructions
    check = "python /opt/airflow/project/check_airflow_pin.py /opt/airflow/project/requirements.txt"
    assert check in instructions
    script = (REPO / "deploy" / "check_airflow_pin.py").read_text()
    assert 'version("apache-airflow")' in script and "raise SystemExit" in script


def test_the_pin_check_passes_and_stops(tmp_path, monkeypatch):
    from importlib.metadata import version

    from tests.deploy.scripts import load

    check = load("check_airflow_pin")
    pins = tmp_path / "requirements.txt"
    pins.write_text(f"apache-airflow=={version('apache-airflow')}\n")
    assert check.main(["check", str(pins)]) == 0
    pins.write_text("apache-airflow==0.0.1\n")
    with pytest.raises(SystemExit, match="pins apache-airflow==0.0.1 but the image has"):
        check.main(["check", str(pins)])


def test_include_and_plugins_are_on_the_path_as_install_sh_puts_them(instructions):
    install_sh = (REPO / "scripts" / "install.sh").read_text()
    local = re.search(r"printf '%s\\n' (.+?) >", install_sh).group(1).split()
    assert local == ['"$PWD/include"', '"$PWD/plugins"']  # the tests' pythonpath too
    pth = re.search(r"printf '%s\\n' (.+?) > \"(.+?)\"$", instructions, re.M)
    assert pth.group(1).split() == ["/opt/airflow/include", "/opt/airflow/plugins"]
    assert 'sysconfig.get_paths()["purelib"]' in pth.group(2)
    assert pth.group(2).endswith(".pth")


def test_the_code_is_copied_and_checked_at_build_time(instructions):
    for folder in ("dags", "include", "plugins", "deploy"):
        assert f"COPY --chown=airflow:0 {folder}/ /opt/airflow/{folder}/" in instructions
    assert (
        "import onefile.hook, onefile_simulator, picsweb_sync.storage.engines, picsweb_sync.storage.picsweb_writes"
        in instructions
    )
    # deploy/picsweb_demo.py builds the demo profile's PICSWeb with it.
    assert "sync_demo.picsweb_db" in instructions
    assert "DagBag('/opt/airflow/dags')" in instructions
    assert "'onefile_picsweb_sync' in bag.dag_ids" in instructions


def test_it_runs_as_the_image_user(instructions):
    assert not re.search(r"^USER\s+(root|0)\b", instructions, re.M)
