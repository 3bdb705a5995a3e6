#!/bin/sh
# The image's entrypoint (deploy/Dockerfile): started as root, it makes MCPR_DATA_DIR (when
# set) the mcpr user's, since platforms mount volumes root-owned (Fly.io, Kubernetes without
# fsGroup), then runs the command as mcpr with no capabilities left. Started as any other
# user, it runs the command as that user unchanged.
set -eu
if [ "$(id -u)" = 0 ]; then
  if [ -n "${MCPR_DATA_DIR:-}" ]; then
    mkdir -p "$MCPR_DATA_DIR"
    # Only the top directory: the router tightens what is inside (0700, files 0600).
    chown mcpr:mcpr "$MCPR_DATA_DIR"
    chmod 700 "$MCPR_DATA_DIR"
    for file in "$MCPR_DATA_DIR"/*; do
      [ -e "$file" ] && chown -R mcpr:mcpr "$file"
    done
  fi
  export HOME=/home/mcpr
  exec setpriv --reuid=mcpr --regid=mcpr --init-groups --inh-caps=-all --bounding-set=-all -- "$@"
fi
exec "$@"
