#!/usr/bin/env bash
# The stand-in base images of deploy/test-images (tests only), built once and then reused:
#   picsweb-test/debian:bookworm-minbase   debootstrap --variant=minbase bookworm, imported
#   apache/airflow:3.3.2-python3.11        deploy/test-images/airflow (+ constraints.txt)
#   postgres:16                            deploy/test-images/postgres
#   redis:7.2-bookworm                     deploy/test-images/redis
# Each image carries the label picsweb.recipe, a hash of what it is built from; an image whose
# label matches is kept. Needs the engine of scripts/docker-engine.sh (DOCKER_HOST set).
# Builds use --network host (the engine runs without iptables, so containers have no route
# out) and the host's CA bundle ($PIP_CERT, else /etc/ssl/certs/ca-certificates.crt) for pip.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_TAG=picsweb-test/debian:bookworm-minbase
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CA_BUNDLE="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"

recipe_of() {  # the label of an image, or nothing
  docker image inspect -f '{{ index .Config.Labels "picsweb.recipe" }}' "$1" 2>/dev/null || true
}

hash_of() {  # a hash of files and folders (names and contents)
  find "$@" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
}

debian_base() {
  local want="debootstrap-minbase-bookworm-v1"
  if [ "$(recipe_of "${DEBIAN_TAG}")" = "${want}" ]; then
    return 0
  fi
  local dir
  dir="$(mktemp -d /var/tmp/picsweb-debootstrap.XXXXXX)"
  echo "test-images: debootstrap --variant=minbase bookworm (about a minute)" >&2
  if ! debootstrap --variant=minbase bookworm "${dir}" "${DEBIAN_MIRROR}" >"${dir}.log" 2>&1; then
    tail -20 "${dir}.log" >&2
    rm -rf "${dir}" "${dir}.log"
    return 1
  fi
  rm -rf "${dir}"/var/cache/apt/archives/*.deb "${dir}"/var/lib/apt/lists/*
  tar -C "${dir}" -c . | docker import \
    --change "LABEL picsweb.recipe=${want}" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "${DEBIAN_TAG}" >/dev/null
  rm -rf "${dir}" "${dir}.log"
}

stand_in() {  # tag, recipe folder, extra files for the build context...
  local tag="$1" folder="$2"
  shift 2
  local want
  want="$(hash_of "${folder}" "$@")"
  want="${want}-$(recipe_of "${DEBIAN_TAG}")"
  if [ "$(recipe_of "${tag}")" = "${want}" ]; then
    echo "test-images: ${tag} is up to date (${want})" >&2
    return 0
  fi
  local context
  context="$(mktemp -d /var/tmp/picsweb-image.XXXXXX)"
  cp -r "${folder}"/. "${context}/"
  for extra in "$@"; do cp "${extra}" "${context}/"; done
  cp "${CA_BUNDLE}" "${context}/pip-ca.crt"
  echo "test-images: building ${tag} from ${folder}" >&2
  local rc=0
  docker build --network host --quiet \
    --label "picsweb.recipe=${want}" \
    --build-arg "DEBIAN_BASE=${DEBIAN_TAG}" \
    -t "${tag}" "${context}" >/dev/null || rc=$?
  rm -rf "${context}"
  return "${rc}"
}

debian_base
stand_in postgres:16 deploy/test-images/postgres
stand_in redis:7.2-bookworm deploy/test-images/redis
stand_in apache/airflow:3.3.2-python3.11 deploy/test-images/airflow constraints.txt
# Dangling layers of earlier recipes.
docker image prune -f >/dev/null
