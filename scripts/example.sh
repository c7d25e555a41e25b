#!/usr/bin/env bash
# Builds examples/hello (multi-stage: RUN, COPY --from, USER) into hello.oci.tar, end to end:
# set-up, a local registry on 127.0.0.1:5000 with an offline busybox base image, the build (as the
# unprivileged user tskuser when run as root: rootless is the point), and a check of the result.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
REG=127.0.0.1:5000
if ! curl -fsS "http://$REG/v2/" >/dev/null 2>&1; then
  dir=/tmp/tsk-example-registry
  mkdir -p "$dir/data"
  cat >"$dir/config.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: $REG
YML
  nohup docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  for _ in $(seq 50); do curl -fsS "http://$REG/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "example: started docker-registry on $REG (log: $dir/log)" >&2
fi
# The base image, made offline from busybox-static (kept if the registry already has one).
if ! curl -fsS -o /dev/null -H 'Accept: application/vnd.oci.image.index.v1+json' \
  -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
  -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
  "http://$REG/v2/library/busybox/manifests/latest"; then
  node_modules/.bin/deno run -A tests/fixtures/make_base_image.ts --registry "$REG" >&2
fi
run=(dist/tsk)
if [[ $(id -u) -eq 0 ]]; then
  id tskuser >/dev/null 2>&1 || useradd --create-home --shell /bin/sh tskuser
  grep -q '^tskuser:' /etc/subuid || echo 'tskuser:200000:65536' >>/etc/subuid
  grep -q '^tskuser:' /etc/subgid || echo 'tskuser:200000:65536' >>/etc/subgid
  home=$(getent passwd tskuser | cut -d: -f6)
  ctx=$(mktemp -d) && cp -r examples/hello/. "$ctx" && chown -R tskuser: "$ctx" && chmod 755 "$ctx"
  # The checkout may sit where tskuser cannot enter (a 0700 mktemp dir): run a copy of the binary.
  bin=$(mktemp -d) && chmod 755 "$bin" && install -m 755 dist/tsk "$bin/tsk"
  run=(setpriv --reuid=tskuser --regid=tskuser --init-groups --reset-env env HOME="$home" "$bin/tsk")
else
  ctx=examples/hello
fi
echo "example: ${run[*]} build -t localhost:5000/hello:1 -o type=oci $ctx > hello.oci.tar" >&2
"${run[@]}" build --progress plain -t localhost:5000/hello:1 --output type=oci "$ctx" > hello.oci.tar
skopeo inspect oci-archive:hello.oci.tar:1 | grep -E '"(Digest|Architecture|Os)"' >&2
out=$(mktemp -d)
tar -xf hello.oci.tar -C "$out"
umoci unpack --rootless --image "$out:1" "$out/bundle" >/dev/null
echo "example: /app/greeting.txt in the image says: $(cat "$out/bundle/rootfs/app/greeting.txt")"
echo "example: wrote $(du -h hello.oci.tar | cut -f1) hello.oci.tar"
rm -rf "$out" ${bin:+"$bin"}
