/**
 * Networking modes of the sandbox. `host` (the default, as rootless BuildKit's) shares the
 * network namespace tsk runs in; `none` gives each run a new network namespace holding only
 * loopback (brought up). Also generates the /etc/hosts and /etc/resolv.conf bind-mounted into
 * every run.
 */
import { readFileSync } from "node:fs";
import { findBinary } from "./binaries.ts";

export type NetworkMode = "host" | "none";

/** BuildKit's default sandbox hostname. */
export const DEFAULT_HOSTNAME = "buildkitsandbox";

/** Whether a run with this mode needs its own network namespace. */
export function needsNetNamespace(mode: NetworkMode): boolean {
  if (mode !== "host" && mode !== "none") throw new Error(`unsupported network mode: ${mode}`);
  return mode === "none";
}

/**
 * /etc/hosts content: localhost and the sandbox hostname on loopback, then the --add-host
 * entries, one `IP<TAB>HOST` line each (as BuildKit's executor/oci/hosts.go).
 */
export function hostsFile(hostname: string, extra: { host: string; ip: string }[] = []): string {
  return `127.0.0.1\tlocalhost ${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n` +
    extra.map((h) => `${h.ip}\t${h.host}\n`).join("");
}

/**
 * /etc/resolv.conf content: the host's for host networking. Without network the file is still
 * provided (tools read it) but nameservers cannot be reached anyway. When the host has none,
 * BuildKit's fallback (Google DNS) is used.
 */
export function resolvConf(_mode: NetworkMode, hostFile = "/etc/resolv.conf"): string {
  let text = "";
  try {
    text = readFileSync(hostFile, "utf8");
  } catch {
    // no host resolv.conf
  }
  if (!/^\s*nameserver\s/m.test(text)) {
    text += (text === "" || text.endsWith("\n") ? "" : "\n") +
      "nameserver 8.8.8.8\nnameserver 8.8.4.4\nnameserver 2001:4860:4860::8888\nnameserver 2001:4860:4860::8844\n";
  }
  return text;
}

/**
 * argv that brings the loopback interface up inside a new network namespace, using whatever the
 * host has (iproute2, net-tools or busybox), or null when none is installed. runc does this
 * itself; the built-in sandbox runs it before switching root.
 */
export function loopbackUpCommand(): string[] | null {
  const ip = findBinary("ip");
  if (ip) return [ip, "link", "set", "lo", "up"];
  const ifconfig = findBinary("ifconfig");
  if (ifconfig) return [ifconfig, "lo", "up"];
  const busybox = findBinary("busybox");
  if (busybox) return [busybox, "ip", "link", "set", "lo", "up"];
  return null;
}
