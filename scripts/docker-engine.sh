#!/usr/bin/env bash
# A Docker engine of the project's own for `make test-compose` (tests/deploy/test_compose_up.py):
#
#   scripts/docker-engine.sh start    # installs Debian's docker.io when missing, starts dockerd
#   scripts/docker-engine.sh stop     # stops the dockerd that `start` started (and its containerd)
#   scripts/docker-engine.sh env      # prints DOCKER_HOST=... for the engine
#
# Its data root is kept at a fixed place outside the repository (PICSWEB_DOCKER_ROOT, default
# /var/cache/picsweb-sync-docker), so the stand-in base images and the build cache survive from
# one run to the next (a fresh clone, CI on the same machine). It never touches a system
# dockerd: its own socket, pid file, exec root; no iptables rules (--iptables=false): containers
# reach each other on user-defined networks and published ports answer on 127.0.0.1, but the
# containers have no route out (builds use --network host, see scripts/docker-test-images.sh).
set -euo pipefail

ROOT="${PICSWEB_DOCKER_ROOT:-/var/cache/picsweb-sync-docker}"
SOCK="${ROOT}/docker.sock"
PIDFILE="${ROOT}/docker.pid"
LOG="${ROOT}/dockerd.log"
export DOCKER_HOST="unix://${SOCK}"

ensure_installed() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v docker >/dev/null 2>&1 || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" != "0" ]; then
      echo "docker-engine: ${missing[*]} missing, and installing needs root" >&2
      return 1
    fi
    echo "docker-engine: installing ${missing[*]} (Debian packages)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

running() {
  [ -f "${PIDFILE}" ] && kill -0 "$(cat "${PIDFILE}")" 2>/dev/null
}

start() {
  ensure_installed
  mkdir -p "${ROOT}/data" "${ROOT}/exec"
  if running; then
    echo "docker-engine: dockerd already running (pid $(cat "${PIDFILE}"))" >&2
  else
    rm -f "${PIDFILE}" "${SOCK}"
    echo "docker-engine: starting dockerd (data root ${ROOT}/data, log ${LOG})" >&2
    # setsid: its own session, so that a Ctrl-C of the caller does not reach it; `stop` ends it.
    setsid dockerd \
      --iptables=false --ip6tables=false \
      --data-root "${ROOT}/data" --exec-root "${ROOT}/exec" \
      -H "unix://${SOCK}" --pidfile "${PIDFILE}" \
      >>"${LOG}" 2>&1 </dev/null &
  fi
  for _ in $(seq 120); do
    if docker version >/dev/null 2>&1; then
      echo "docker-engine: ready at ${DOCKER_HOST}" >&2
      return 0
    fi
    sleep 0.5
  done
  echo "docker-engine: dockerd did not answer in 60 s; the end of ${LOG}:" >&2
  tail -20 "${LOG}" >&2
  return 1
}

stop() {
  if ! running; then
    rm -f "${PIDFILE}"
    return 0
  fi
  local pid
  pid="$(cat "${PIDFILE}")"
  echo "docker-engine: stopping dockerd (pid ${pid})" >&2
  kill -TERM "${pid}"
  for _ in $(seq 60); do
    if ! kill -0 "${pid}" 2>/dev/null; then
      unmount_leftovers
      echo "docker-engine: stopped" >&2
      return 0
    fi
    sleep 0.5
  done
  echo "docker-engine: dockerd did not stop in 30 s: killing it" >&2
  kill -KILL "${pid}" 2>/dev/null || true
  sleep 1
  unmount_leftovers
}

# What a stopped dockerd leaves mounted under its folders (the network namespace of its
# default bridge, the data root's own bind mount): unmounted, so the folder can be removed.
unmount_leftovers() {
  local mounts
  mounts="$(awk -v root="${ROOT}/" 'index($2, root) == 1 {print $2}' /proc/self/mounts | sort -r)"
  for m in ${mounts}; do
    umount "${m}" 2>/dev/null || umount -l "${m}" 2>/dev/null || true
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) echo "DOCKER_HOST=${DOCKER_HOST}" ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
