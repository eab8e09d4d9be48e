"""Airflow finds the sync page plugin in plugins/ with its own plugin loader: one plugin,
no import errors, the package's inner modules not loaded as top-level modules, the app not
built (nor FastAPI imported for it) until the api-server asks for ``fastapi_apps``; then
the app mounts at /onefile-sync and the navigation entry points at it relatively."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.support.airflow_server import REPO

PROBE = textwrap.dedent(
    """
    import json, sys
    from airflow import plugins_manager
    plugins, errors = plugins_manager._get_plugins()
    ours = [p for p in plugins if p.name == "onefile_sync_page"]
    loaded = {name: getattr(mod, "__file__", "") for name, mod in sys.modules.items()}
    answer = {
        "plugins": [p.name for p in ours],
        "errors": {k: v for k, v in errors.items() if "sync_page" in k},
        "app_built_on_load": "sync_page.app" in sys.modules,
        "stray_modules": sorted(
            name for name, path in loaded.items()
            if path and "/plugins/sync_page/" in path and name.split(".")[0] != "sync_page"
        ),
    }
    from fastapi import FastAPI
    from airflow.api_fastapi.app import init_plugins
    app = FastAPI()
    init_plugins(app)
    answer["mounted"] = [r.path for r in app.routes if r.path.startswith("/onefile")]
    info = plugins_manager.get_plugin_info()
    answer["views"] = [v for p in info if p["name"] == "onefile_sync_page" for v in p["external_views"]]
    answer["apps"] = [a for p in info if p["name"] == "onefile_sync_page" for a in p["fastapi_apps"]]
    # The app's engines come from Airflow connections, looked up the api-server's way.
    from sync_page.app import Sources
    sources = Sources.from_airflow()
    with sources.staging().connect() as conn:
        answer["staging"] = conn.exec_driver_sql("select 41 + 1").scalar()
    answer["same_engine"] = sources.picsweb() is sources.staging()
    print(json.dumps(answer, default=str))
    """
)


def test_airflow_loads_the_plugin_and_mounts_its_app(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(tmp_path),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW_CONN_PICSWEB_DB=json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "p.db")}),
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["plugins"] == ["onefile_sync_page"]
    assert answer["errors"] == {}
    assert answer["app_built_on_load"] is False
    assert answer["stray_modules"] == ["sync_page_plugin"]
    assert answer["mounted"] == ["/onefile-sync"]
    assert answer["views"] == [
        {
            "name": "OneFile sync",
            "href": "onefile-sync/",
            "url_route": "onefile-sync",
            "destination": "nav",
            "nav_top_level": True,
        }
    ]
    assert [a["url_prefix"] for a in answer["apps"]] == ["/onefile-sync"]
    assert answer["staging"] == 42 and answer["same_engine"] is True
