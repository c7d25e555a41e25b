/**
 * BuildKit addresses as `buildctl --addr` / buildx take them, and the connections behind them:
 * `docker-unix:///var/run/docker.sock` (or `docker`) reaches dockerd's embedded BuildKit through
 * the Engine API's `/grpc` and `/session` endpoints, upgraded to h2c (what buildx's docker driver
 * does); `unix:///path` and `tcp://host:port` (TLS with --tlscacert/--tlscert/--tlskey) reach a
 * buildkitd directly, the session then running inside the Control.Session stream.
 */
import net from "node:net";
import tls from "node:tls";
import http from "node:http";
import { readFileSync } from "node:fs";
import type { Duplex } from "node:stream";

export type Addr =
  | { kind: "docker"; socket: string; url: string }
  | { kind: "unix"; socket: string; url: string }
  | { kind: "tcp"; host: string; port: number; url: string };

export type TlsFiles = { ca?: string; cert?: string; key?: string; serverName?: string };

export class AddrError extends Error {}

/** Parses an address; throws AddrError with the accepted forms on anything else. */
export function parseAddr(s: string): Addr {
  if (s === "docker") return { kind: "docker", socket: "/var/run/docker.sock", url: s };
  const m = /^([a-z0-9-]+):\/\/(.*)$/.exec(s);
  const forms =
    "expected docker-unix:///path/docker.sock, docker, unix:///path/buildkitd.sock or tcp://host:port";
  if (!m) throw new AddrError(`invalid BuildKit address ${JSON.stringify(s)}: ${forms}`);
  const [, scheme, rest] = m;
  if (scheme === "docker-unix" || scheme === "unix") {
    if (!rest.startsWith("/")) {
      throw new AddrError(`invalid BuildKit address ${JSON.stringify(s)}: the socket path must be absolute`);
    }
    return { kind: scheme === "unix" ? "unix" : "docker", socket: rest, url: s };
  }
  if (scheme === "tcp") {
    const hm = /^(\[[^\]]+\]|[^:/]+):(\d+)\/?$/.exec(rest);
    if (!hm) throw new AddrError(`invalid BuildKit address ${JSON.stringify(s)}: expected tcp://host:port`);
    return { kind: "tcp", host: hm[1].replace(/^\[|\]$/g, ""), port: Number(hm[2]), url: s };
  }
  throw new AddrError(`unsupported BuildKit address scheme ${JSON.stringify(scheme)} in ${JSON.stringify(s)}: ${forms}`);
}

/** A raw stream to the server: the docker socket, a buildkitd unix socket or TCP (TLS). */
export function dialRaw(addr: Addr, tlsFiles: TlsFiles = {}): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    let s: net.Socket;
    const fail = (err: Error) =>
      reject(new AddrError(`cannot connect to BuildKit at ${addr.url}: ${(err as Error).message}`));
    if (addr.kind === "tcp" && (tlsFiles.ca || tlsFiles.cert)) {
      const t = tls.connect({
        host: addr.host,
        port: addr.port,
        // SNI takes host names only; an IP address is checked against the certificate's IP SANs.
        servername: tlsFiles.serverName ?? (net.isIP(addr.host) ? undefined : addr.host),
        ca: tlsFiles.ca ? readFileSync(tlsFiles.ca) : undefined,
        cert: tlsFiles.cert ? readFileSync(tlsFiles.cert) : undefined,
        key: tlsFiles.key ? readFileSync(tlsFiles.key) : undefined,
        ALPNProtocols: ["h2"],
      });
      t.once("error", fail);
      t.once("secureConnect", () => {
        t.off("error", fail);
        resolve(t);
      });
      return;
    }
    s = addr.kind === "tcp" ? net.connect({ host: addr.host, port: addr.port }) : net.connect({ path: addr.socket });
    s.once("error", fail);
    s.once("connect", () => {
      s.off("error", fail);
      resolve(s);
    });
  });
}

/**
 * Asks dockerd to upgrade a connection to h2c (`POST /grpc` or `/session`), as the Docker
 * client's DialHijack does; returns the socket once `101 Switching Protocols` arrived, with any
 * bytes that came after the response headers put back.
 */
export async function dockerUpgrade(
  addr: Addr,
  endpoint: "/grpc" | "/session",
  headers: [string, string][] = [],
): Promise<Duplex> {
  const s = (await dialRaw(addr)) as net.Socket;
  return await new Promise((resolve, reject) => {
    let head = `POST ${endpoint} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n`;
    for (const [k, v] of headers) head += `${k}: ${v}\r\n`;
    s.write(head + "\r\n");
    let buf = Buffer.alloc(0);
    const onError = (err: Error) => reject(new AddrError(`${addr.url}${endpoint}: ${err.message}`));
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const i = buf.indexOf("\r\n\r\n");
      if (i < 0) {
        if (buf.length > 65536) onError(new Error("response headers too large"));
        return;
      }
      s.off("data", onData);
      s.off("error", onError);
      s.pause();
      const status = buf.subarray(0, i).toString("latin1").split("\r\n")[0];
      const rest = buf.subarray(i + 4);
      if (!/^HTTP\/1\.[01] 101 /.test(status)) {
        s.destroy();
        const body = rest.toString("utf8").trim().replace(/^\{"message":"(.*)"\}$/, "$1");
        reject(
          new AddrError(
            `${addr.url}: dockerd refused ${endpoint} (${status.replace(/^HTTP\/1\.[01] /, "")})${
              body ? `: ${body}` : ""
            }`,
          ),
        );
        return;
      }
      if (rest.length) s.unshift(rest);
      resolve(s);
    };
    s.on("data", onData);
    s.on("error", onError);
  });
}

/** dockerd's version (`GET /version`), for error messages; undefined when it does not answer. */
export function dockerVersion(socket: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath: socket, path: "/version", timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => {
        try {
          const v = JSON.parse(body) as { Version?: string; ApiVersion?: string };
          resolve(v.Version ? `dockerd ${v.Version} (API ${v.ApiVersion})` : undefined);
        } catch {
          resolve(undefined);
        }
      });
    });
    req.on("error", () => resolve(undefined));
    req.on("timeout", () => req.destroy());
  });
}
