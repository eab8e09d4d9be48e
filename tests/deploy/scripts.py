"""The deployment's scripts (deploy/*.py are scripts, not packages) loaded as modules."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


@cache
def load(name: str) -> ModuleType:
    """``deploy/<name>.py`` as the module ``deploy_<name>``."""
    module_name = f"deploy_{name}"
    spec = importlib.util.spec_from_file_location(module_name, DEPLOY / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
