/**
 * EXPOSE port specs as BuildKit's dispatchExpose parses them (convert_expose.go):
 * `[ip:][hostPort:]containerPort[-end][/proto]` becomes one `port/proto` per port of the range,
 * proto lowercased (tcp by default; tcp, udp or sctp), with BuildKit's error texts.
 */
import { isIP } from "node:net";

function portNumber(raw: string): number {
  if (raw === "") throw new Error("value is empty");
  if (!/^[+-]?\d+$/.test(raw)) throw new Error("invalid syntax");
  const n = Number(raw);
  if (n < 0 || n > 65535) throw new Error("value out of range (0–65535)");
  return n;
}

function portRange(ports: string): [number, number] {
  if (ports === "") throw new Error("empty string specified for ports");
  const i = ports.indexOf("-");
  const start = i < 0 ? ports : ports.slice(0, i);
  const end = i < 0 ? "" : ports.slice(i + 1);
  const s = portNumber(start);
  if (i < 0 || start === end) return [s, s];
  const e = portNumber(end);
  if (e < s) throw new Error("invalid port range: " + ports);
  return [s, e];
}

/** The `port/proto` entries one EXPOSE word stands for. */
export function exposePorts(rawPort: string): string[] {
  const parts = rawPort.split(":");
  const n = parts.length;
  let ip = n >= 3 ? parts.slice(0, n - 2).join(":") : "";
  const hostPort = n >= 2 ? parts[n - 2] : "";
  const containerPort = parts[n - 1];
  const slash = containerPort.indexOf("/");
  const port = slash < 0 ? containerPort : containerPort.slice(0, slash);
  let proto = slash < 0 ? "" : containerPort.slice(slash + 1);
  if (port === "") throw new Error(`invalid port: ${JSON.stringify(rawPort)}: no port specified`);
  if (proto === "") proto = "tcp";
  else if (!["tcp", "udp", "sctp"].includes(proto.toLowerCase())) {
    throw new Error(`invalid port: ${JSON.stringify(rawPort)}: invalid proto: ${proto}`);
  }
  if (ip.startsWith("[")) ip = ip.replace(/^\[(.*)\]$/, "$1");
  if (ip !== "" && !isIP(ip)) throw new Error("invalid IP address: " + ip);
  let range: [number, number];
  try {
    range = portRange(port);
  } catch {
    throw new Error("invalid containerPort: " + port);
  }
  if (hostPort !== "") {
    let hr: [number, number];
    try {
      hr = portRange(hostPort);
    } catch {
      throw new Error("invalid hostPort: " + hostPort);
    }
    if (range[1] - range[0] !== hr[1] - hr[0] && range[1] !== range[0]) {
      throw new Error(
        `invalid ranges specified for container and host Ports: ${port} and ${hostPort}`,
      );
    }
  }
  const out: string[] = [];
  for (let p = range[0]; p <= range[1]; p++) out.push(`${p}/${proto.toLowerCase()}`);
  return out;
}
