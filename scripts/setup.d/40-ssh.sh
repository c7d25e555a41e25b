#!/usr/bin/env bash
# SSH for the --ssh / RUN --mount=type=ssh tests: the client tools (ssh, ssh-agent, ssh-keygen)
# and a server binary the tests start themselves on loopback (no service is enabled).
set -euo pipefail
if ! command -v ssh-agent >/dev/null || [[ ! -x /usr/sbin/sshd ]]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    openssh-client openssh-server >/dev/null
fi
