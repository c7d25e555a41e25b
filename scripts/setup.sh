#!/usr/bin/env bash
# Installs what tsk's build and tests need on Debian 12 (idempotent), then compiles dist/tsk.
#   apt: uidmap (newuidmap), runc, attr (getfattr/setfattr), busybox-static (offline base image),
#        docker-registry (test registry), skopeo + umoci (output validation), apache2-utils
#        (htpasswd), openssl (token-auth test certs), zstd/xz-utils/bzip2 (archives), util-linux,
#        docker.io + podman (container-matrix and remote-BuildKit tests), proot (the no-namespace
#        sandbox), qemu-user-static + binfmt-support (foreign-platform RUN), jq.
#   scripts/setup.d/*.sh: further idempotent steps, one file per concern (run in name order).
#   npm: deno (tests), bun (compiler), protobufjs.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(uidmap runc attr busybox-static docker-registry skopeo umoci apache2-utils openssl zstd xz-utils bzip2 util-linux git curl
      docker.io podman proot qemu-user-static binfmt-support jq)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then echo "setup: missing packages ${missing[*]} (run as root)" >&2; exit 1; fi
  echo "setup: apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
fi
for f in scripts/setup.d/*.sh; do [[ -e $f ]] && bash "$f"; done
# The registry package starts a service on :5000 on some systems; tests run their own.
stamp=$(sha256sum package-lock.json | cut -c1-64)
if [[ ! -x node_modules/.bin/deno || ! -x node_modules/bun/bin/bun.exe || "$(cat node_modules/.tsk-stamp 2>/dev/null)" != "$stamp" ]]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund >/dev/null
  echo "$stamp" > node_modules/.tsk-stamp
fi
node_modules/.bin/deno run -A scripts/compile.ts
