# The sync's Airflow image: the official Airflow image plus the project's pinned packages,
# with the DAG and the project's code baked in. Built by `docker compose build` (every
# Airflow service of docker-compose.yaml runs it); see docs/deployment.md.
#
# Upgrading Airflow: bump the pins in requirements.txt / constraints.txt AND this tag
# together (the build stops when they disagree), rebuild, then `docker compose up -d`
# (the airflow-init service runs `airflow db migrate`).
# Python 3.11: the version the project's venv, tests and constraints.txt are made with.
ARG AIRFLOW_BASE_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_BASE_IMAGE}

# The project's pins, the same files `make install` uses: requirements.txt, resolved against
# the full transitive set in constraints.txt. Installed here at build time, never through
# _PIP_ADDITIONAL_REQUIREMENTS (which Airflow documents as for quick trials only: it
# reinstalls at every container start).
#
# Behind a TLS-inspecting proxy, pip must trust the proxy's CA: put its PEM bundle in the
# build context as build-ca.pem (optional; used for this step only, then deleted).
COPY --chown=airflow:0 requirements.txt constraints.txt /opt/airflow/project/
COPY --chown=airflow:0 deploy/check_airflow_pin.py build-ca.pe[m] /opt/airflow/project/
RUN if [ -f /opt/airflow/project/build-ca.pem ]; then \
        export PIP_CERT=/opt/airflow/project/build-ca.pem; \
    fi \
    && pip install --no-cache-dir \
        -r /opt/airflow/project/requirements.txt \
        -c /opt/airflow/project/constraints.txt \
    && rm -f /opt/airflow/project/build-ca.pem \
    && python /opt/airflow/project/check_airflow_pin.py /opt/airflow/project/requirements.txt
# Report (without failing the build) any package the base image brought whose requirements
# the project's pins do not meet.
RUN pip check || echo "WARNING: pip check found the conflicts above (see docs/deployment.md)"

# include/ and plugins/ importable exactly as in the tests and `make install`
# (scripts/install.sh): a .pth file in the environment's site-packages naming both folders,
# so every Airflow process, the task processes and `python -m ...` see the same packages.
RUN printf '%s\n' /opt/airflow/include /opt/airflow/plugins \
        > "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/picsweb_onefile_sync.pth"

# The code, baked in (deploy/docker-compose.dev.yaml mounts the working tree over it for
# development). deploy/ holds the init and demo scripts the compose services run.
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 include/ /opt/airflow/include/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 deploy/ /opt/airflow/deploy/

# The demo profile shares the day its data are built around through this folder (a volume).
RUN mkdir -p /opt/airflow/demo-state \
    && python -c "import onefile.hook, onefile_simulator, picsweb_sync.storage.engines, picsweb_sync.storage.picsweb_writes, sync_demo.picsweb_db, sync_demo.builder" \
    && AIRFLOW_HOME=/tmp/airflow-build-check python -c "\
from airflow.dag_processing.dagbag import DagBag; \
bag = DagBag('/opt/airflow/dags'); \
assert not bag.import_errors, bag.import_errors; \
assert 'onefile_picsweb_sync' in bag.dag_ids, bag.dag_ids; \
print('DAGs:', sorted(bag.dag_ids))" \
    && rm -rf /tmp/airflow-build-check
