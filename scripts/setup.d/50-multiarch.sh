#!/usr/bin/env bash
# Foreign-platform RUN and the multi-platform tests (idempotent, runs as root in CI):
#  1. binfmt_misc mounted and Debian's qemu-user-static handlers enabled (update-binfmts
#     --enable). Debian registers them with the F (fix-binary) flag, so they also work inside
#     user namespaces and chroots, where the interpreter path does not exist.
#  2. The arm64 busybox the test fixture puts in its amd64+arm64 index, made available offline:
#     `apt-get download busybox-static:arm64`, extracted (never installed) to
#     /var/cache/tsk/busybox-arm64/bin/busybox (tests/fixtures/base_images.ts reads it there).
set -euo pipefail
if [[ $(id -u) -ne 0 ]]; then
  echo "setup.d/50-multiarch: not root, skipping (binfmt_misc and apt need root)" >&2
  exit 0
fi
BINFMT=/proc/sys/fs/binfmt_misc
if [[ ! -e $BINFMT/register ]]; then
  mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null ||
    echo "setup.d/50-multiarch: cannot mount binfmt_misc (in a container without privileges?)" >&2
fi
if [[ -e $BINFMT/register ]] && command -v update-binfmts >/dev/null; then
  for f in /usr/share/binfmts/qemu-*; do
    name=$(basename "$f")
    [[ -e $BINFMT/$name ]] && continue
    update-binfmts --enable "$name" >/dev/null 2>&1 ||
      echo "setup.d/50-multiarch: update-binfmts --enable $name failed" >&2
  done
fi
OUT=/var/cache/tsk/busybox-arm64
# (runs in a `!` context, where set -e is off: every step says `|| return 1`)
fetch_busybox_arm64() {
  export DEBIAN_FRONTEND=noninteractive
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64 || return 1
    apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null || return 1
  fi
  local tmp
  tmp=$(mktemp -d) || return 1
  trap 'rm -rf "$tmp"' RETURN
  if ! (cd "$tmp" && apt-get download -qq busybox-static:arm64 >/dev/null 2>&1); then
    apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null || return 1
    (cd "$tmp" && apt-get download -qq busybox-static:arm64 >/dev/null) || return 1
  fi
  dpkg-deb -x "$tmp"/busybox-static_*_arm64.deb "$tmp/root" || return 1
  mkdir -p "$OUT/bin" || return 1
  install -m 0755 "$tmp/root/bin/busybox" "$OUT/bin/busybox.tmp" || return 1
  mv "$OUT/bin/busybox.tmp" "$OUT/bin/busybox"
}
if [[ ! -x $OUT/bin/busybox ]] && ! (fetch_busybox_arm64); then
  # Not fatal for the rest of the setup: the multi-platform tests then say why they are skipped.
  echo "setup.d/50-multiarch: could not fetch busybox-static:arm64; multi-platform tests will be skipped" >&2
fi
