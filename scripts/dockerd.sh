#!/usr/bin/env bash
# Starts Debian's dockerd (docker.io, with its embedded BuildKit) when it does not answer yet:
# these machines have no systemd. Idempotent; safe to call from several test processes at once.
# Logs: ${TSK_DOCKERD_DIR:-/tmp/tsk-dockerd}/dockerd.log. Used by the container-matrix tests,
# the remote-BuildKit tests and the benchmark.
set -euo pipefail
DIR=${TSK_DOCKERD_DIR:-/tmp/tsk-dockerd}
DOCKER=/usr/bin/docker # /usr/local/bin/docker may be a newer client that refuses to build
mkdir -p "$DIR"
up() { "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }
if up; then exit 0; fi
exec 9>"$DIR/start.lock"
flock 9
if up; then exit 0; fi
mkdir -p /etc/docker
if [[ ! -s /etc/docker/daemon.json ]]; then
  cat >/etc/docker/daemon.json <<'JSON'
{
  "insecure-registries": ["localhost:5000", "127.0.0.1:5000"],
  "storage-driver": "overlay2",
  "features": { "buildkit": true }
}
JSON
fi
if ! ctr --address /run/containerd/containerd.sock version >/dev/null 2>&1; then
  setsid /usr/bin/containerd >>"$DIR/containerd.log" 2>&1 </dev/null &
  for _ in $(seq 300); do ctr --address /run/containerd/containerd.sock version >/dev/null 2>&1 && break; sleep 0.1; done
fi
setsid /usr/sbin/dockerd --containerd=/run/containerd/containerd.sock >>"$DIR/dockerd.log" 2>&1 </dev/null &
for _ in $(seq 600); do up && exit 0; sleep 0.1; done
echo "dockerd.sh: dockerd did not come up; last log lines:" >&2
tail -n 30 "$DIR/dockerd.log" >&2
exit 1
