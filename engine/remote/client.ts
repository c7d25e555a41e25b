/**
 * Connection to a BuildKit (dockerd's embedded one, or buildkitd): the Control API client on
 * one HTTP/2 connection and the session served back to it on another (dockerd's `/session`
 * upgrade) or inside the Control.Session stream (buildkitd).
 */
import http2 from "node:http2";
import { randomBytes } from "node:crypto";
import { Duplex } from "node:stream";
import { type Addr, dialRaw, dockerUpgrade, dockerVersion, type TlsFiles } from "./addr.ts";
import { GrpcClient, type Handler, serveGrpc } from "./grpc.ts";
import { sessionHeaders } from "./session.ts";
import {
  decode,
  encode,
  type SolveRequest,
  type StatusResponse,
  type UsageRecord,
  type WorkerRecord,
} from "../../proto/control.ts";

const SVC = "/moby.buildkit.v1.Control/";

export class RemoteClient {
  addr: Addr;
  grpc: GrpcClient;
  private closers: (() => void)[] = [];
  private constructor(addr: Addr, grpc: GrpcClient) {
    this.addr = addr;
    this.grpc = grpc;
  }

  static async connect(addr: Addr, tlsFiles: TlsFiles = {}): Promise<RemoteClient> {
    const sock = addr.kind === "docker" ? await dockerUpgrade(addr, "/grpc") : await dialRaw(addr, tlsFiles);
    const session = http2.connect(addr.kind === "tcp" && tlsFiles.ca ? "https://buildkitd" : "http://buildkitd", {
      createConnection: () => sock as never,
    });
    session.on("error", () => {});
    return new RemoteClient(addr, new GrpcClient(session));
  }

  /** A human name of the server and its version, for messages. */
  async serverVersion(): Promise<string> {
    if (this.addr.kind === "docker") {
      return (await dockerVersion(this.addr.socket)) ?? `dockerd at ${this.addr.url}`;
    }
    try {
      const r = decode<{ buildkitVersion?: { version?: string; revision?: string } }>(
        "InfoResponse",
        await this.grpc.unary(SVC + "Info", encode("InfoRequest", {})),
      );
      if (r.buildkitVersion?.version) return `buildkitd ${r.buildkitVersion.version}`;
    } catch { /* older than v0.11 */ }
    const w = (await this.listWorkers())[0];
    return w?.BuildkitVersion?.version ? `buildkitd ${w.BuildkitVersion.version}` : `buildkitd at ${this.addr.url}`;
  }

  /**
   * The server's BuildKit version: from its workers or Info (v0.11+), else for dockerd the
   * BuildKit its release vendors (no API tells); undefined when unknown.
   */
  async buildkitVersion(): Promise<string | undefined> {
    const w = await this.listWorkers().catch(() => []);
    const v = w.find((r) => r.BuildkitVersion?.version)?.BuildkitVersion?.version;
    if (v) return v;
    if (this.addr.kind !== "docker") {
      try {
        const r = decode<{ buildkitVersion?: { version?: string } }>(
          "InfoResponse",
          await this.grpc.unary(SVC + "Info", encode("InfoRequest", {})),
        );
        return r.buildkitVersion?.version;
      } catch {
        return undefined;
      }
    }
    const d = /^dockerd (\d+)\.(\d+)/.exec((await dockerVersion(this.addr.socket)) ?? "");
    if (!d) return undefined;
    const major = Number(d[1]);
    // moby's vendored BuildKit per release: 19.03 v0.6, 20.10 v0.8, 23 v0.10, 24 v0.11, 25+ v0.12+.
    return major < 20 ? "v0.6" : major < 23 ? "v0.8" : major === 23 ? "v0.10" : major === 24 ? "v0.11" : "v0.12";
  }

  /** The exporters a server offers (no API lists them: from the server's kind). */
  exporters(): string[] {
    return this.addr.kind === "docker"
      ? ["moby", "local", "tar"]
      : ["image", "oci", "docker", "local", "tar"];
  }

  async listWorkers(): Promise<WorkerRecord[]> {
    const r = decode<{ record?: WorkerRecord[] }>(
      "ListWorkersResponse",
      await this.grpc.unary(SVC + "ListWorkers", encode("ListWorkersRequest", {})),
    );
    return r.record ?? [];
  }

  async diskUsage(filter: string[] = []): Promise<UsageRecord[]> {
    const r = decode<{ record?: UsageRecord[] }>(
      "DiskUsageResponse",
      await this.grpc.unary(SVC + "DiskUsage", encode("DiskUsageRequest", { filter })),
    );
    return r.record ?? [];
  }

  /** Prunes the cache (`keepDuration` in nanoseconds, as BuildKit takes it). */
  async *prune(all: boolean, keepDuration = 0, filter: string[] = []): AsyncIterable<UsageRecord> {
    const c = this.grpc.call(SVC + "Prune");
    c.send(encode("PruneRequest", { all, keepDuration, filter }));
    c.end();
    for await (const m of c.messages) yield decode<UsageRecord>("UsageRecord", m);
  }

  async solve(req: SolveRequest): Promise<Record<string, string>> {
    const r = decode<{ ExporterResponse?: Record<string, string> }>(
      "SolveResponse",
      await this.grpc.unary(SVC + "Solve", encode("SolveRequest", req)),
    );
    return r.ExporterResponse ?? {};
  }

  async *status(ref: string): AsyncIterable<StatusResponse> {
    const c = this.grpc.call(SVC + "Status");
    c.send(encode("StatusRequest", { Ref: ref }));
    c.end();
    for await (const m of c.messages) yield decode<StatusResponse>("StatusResponse", m);
  }

  /** Starts a session serving `handlers`; returns its id. */
  async startSession(
    name: string,
    sharedKey: string,
    handlers: Map<string, Handler>,
    onError: (e: Error) => void,
  ): Promise<string> {
    const id = randomBytes(16).toString("hex");
    const headers = sessionHeaders(id, name, sharedKey, handlers.keys());
    if (this.addr.kind === "docker" && process.env.TSK_SESSION_TRANSPORT !== "control") {
      const sock = await dockerUpgrade(this.addr, "/session", headers);
      this.closers.push(serveGrpc(sock, handlers, onError));
      return id;
    }
    // buildkitd (and dockerd with TSK_SESSION_TRANSPORT=control): the session's HTTP/2 runs
    // inside Control.Session's BytesMessage stream, as BuildKit's own client does.
    const md: Record<string, string[]> = {};
    for (const [k, v] of headers) (md[k.toLowerCase()] ??= []).push(v);
    const call = this.grpc.call(SVC + "Session", md as unknown as Record<string, string>);
    const duplex = new Duplex({
      read() {},
      write(chunk: Uint8Array, _enc, cb) {
        call.send(encode("BytesMessage", { data: chunk }));
        cb();
      },
      final(cb) {
        call.end();
        cb();
      },
    });
    (async () => {
      try {
        for await (const m of call.messages) {
          duplex.push(decode<{ data?: Uint8Array }>("BytesMessage", m).data ?? new Uint8Array());
        }
        duplex.push(null);
      } catch (err) {
        duplex.destroy(err as Error);
      }
    })();
    this.closers.push(serveGrpc(duplex, handlers, onError), () => call.cancel());
    return id;
  }

  close() {
    for (const c of this.closers.splice(0)) {
      try {
        c();
      } catch { /* closing */ }
    }
    this.grpc.session.destroy();
  }
}
