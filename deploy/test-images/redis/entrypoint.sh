#!/usr/bin/env bash
# The stand-in's entrypoint: what the official redis image's docker-entrypoint.sh does
# (see README.md beside this folder).
set -euo pipefail
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi
if [ "$1" = "redis-server" ]; then
  # The official image builds Redis with protected mode off (pointless inside a container
  # network) and listens on every address; Debian's binary needs to be told.
  case " $* " in
    *.conf*) ;;
    *) set -- "$@" --protected-mode no --bind "*" ;;
  esac
  if [ "$(id -u)" = "0" ]; then
    find . \! -user redis -exec chown redis '{}' + 2>/dev/null || true
    exec gosu redis "$@"
  fi
fi
exec "$@"
