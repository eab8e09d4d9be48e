#!/usr/bin/env bash
# The airflow-init service of docker-compose.yaml: run once before the other Airflow services
# start (they wait for it to complete), and again after every upgrade.
#   1. airflow db migrate: creates or upgrades the metadata database (fails loudly; the
#      image's own _AIRFLOW_DB_MIGRATE hook would carry on after a failed migration);
#   2. the admin user of the auth manager in use (FAB: users live in the metadata DB), and
#      the sync's own user for the run notes (role User);
#   3. the onefile_api pool: every task that calls OneFile runs in it, and without it those
#      tasks never start.
# Run by the image's entrypoint, which first waits for the metadata database.
set -euo pipefail

echo "Airflow $(python -c 'import airflow; print(airflow.__version__)')"
echo "== airflow db migrate"
airflow db migrate

admin="${AIRFLOW_ADMIN_USERNAME:-admin}"
# The compose file always sets it; asking Airflow costs a few seconds otherwise.
auth_manager="${AIRFLOW__CORE__AUTH_MANAGER:-$(airflow config get-value core auth_manager)}"
echo "== admin user '${admin}' (auth manager: ${auth_manager})"
case "${auth_manager}" in
  *FabAuthManager)
    : "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD in .env (see .env.example)}"
    # `users create` says so and changes nothing when the user exists (change the password in
    # the UI: Security > List Users).
    airflow users create \
      --username "${admin}" \
      --password "${AIRFLOW_ADMIN_PASSWORD}" \
      --firstname "${AIRFLOW_ADMIN_FIRSTNAME:-Airflow}" \
      --lastname "${AIRFLOW_ADMIN_LASTNAME:-Admin}" \
      --email "${AIRFLOW_ADMIN_EMAIL:-airflow-admin@example.org}" \
      --role Admin
    # The sync's own login for the REST API (connection airflow_api): it sets each run's
    # note, which FAB's User role allows (edit DAG runs), and can do nothing an admin can.
    : "${SYNC_NOTE_PASSWORD:?set SYNC_NOTE_PASSWORD in .env (see .env.example)}"
    airflow users create \
      --username "${SYNC_NOTE_USERNAME:-sync-notes}" \
      --password "${SYNC_NOTE_PASSWORD}" \
      --firstname OneFile \
      --lastname Sync \
      --email "${SYNC_NOTE_EMAIL:-onefile-sync@example.org}" \
      --role User
    ;;
  *SimpleAuthManager)
    echo "SimpleAuthManager: users come from [core] simple_auth_manager_users, not the database"
    ;;
  *)
    echo "auth manager ${auth_manager}: create the admin user its own way"
    ;;
esac

echo "== pool onefile_api"
airflow pools set onefile_api 1 "OneFile API rate limit"
echo "airflow-init done"
