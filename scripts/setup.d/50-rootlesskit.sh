#!/usr/bin/env bash
# rootlesskit: the second way into the user namespace (TSK_ROOTLESSKIT=1), tested end to end
# by tests/e2e/sandboxes_test.ts. Idempotent.
set -euo pipefail
command -v rootlesskit >/dev/null && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends rootlesskit >/dev/null || {
  apt-get update >/dev/null && apt-get install -y --no-install-recommends rootlesskit >/dev/null
}
