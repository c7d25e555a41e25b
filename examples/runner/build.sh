#!/usr/bin/env bash
# Builds the tsk runner image with tsk itself and writes it as a docker-loadable tarball:
#   examples/runner/build.sh OUT.tar [TAG] [TSK]   (TAG default tsk-runner:latest, TSK dist/tsk)
# The Debian base comes from debian-base.sh (debootstrap from this machine's apt mirror, cached
# under /var/cache/tsk-runner). The tsk store is $TSK_RUNNER_STORE (default
# /var/cache/tsk-runner/store), so a rebuild with unchanged inputs is all cache hits.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:?usage: build.sh OUT.tar [TAG] [TSK]}
tag=${2:-tsk-runner:latest}
tsk=${3:-$here/../../dist/tsk}
base=$(bash "$here/debian-base.sh")
store=${TSK_RUNNER_STORE:-/var/cache/tsk-runner/store}
ctx=$(mktemp -d "${TMPDIR:-/tmp}/tsk-runner-ctx.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$ctx/Dockerfile"
# Hard links when on the same filesystem (no copy of 250 MB), else copies.
ln "$base" "$ctx/debian-bookworm.tar" 2>/dev/null || cp "$base" "$ctx/debian-bookworm.tar"
ln "$tsk" "$ctx/tsk" 2>/dev/null || cp "$tsk" "$ctx/tsk"
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-946684800} "$tsk" build --root "$store" --progress "${PROGRESS:-plain}" \
  -t "$tag" -o "type=docker,dest=$out" "$ctx"
