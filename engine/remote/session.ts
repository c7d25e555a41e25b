/**
 * The client side of a BuildKit session: the gRPC services BuildKit calls back into while it
 * builds — health, FileSync (the build context and the Dockerfile's directory, filtered by
 * the patterns the LLB carries), FileSend (type=local/tar outputs coming back), Secrets and
 * Auth (registry credentials from ~/.docker/config.json), and SSH (`--ssh`: each ForwardAgent
 * stream is one connection to tsk's agent socket for that id, as engine/ssh serves it locally).
 */
import { createWriteStream, promises as fsp } from "node:fs";
import net from "node:net";
import type { Writable } from "node:stream";
import { Code, GrpcError, type Handler, type ServerCall } from "./grpc.ts";
import { decode, encode } from "../../proto/control.ts";
import { receiveDir, sendDir } from "./fsutil.ts";

export type SessionOutput = { type: "local" | "tar"; dest: string };

export type SessionOptions = {
  /** Local name ("context", "dockerfile") → directory. */
  dirs: Map<string, string>;
  /** Secret id → file path or `env:NAME`. */
  secrets: Map<string, string>;
  /** Host → credentials, from the Docker config. */
  credentials: (host: string) => Promise<{ username: string; secret: string } | undefined>;
  output?: SessionOutput;
  /** `--ssh` ids; `agent(id)` gives the socket of tsk's agent for that id (engine/ssh/agent.ts). */
  ssh?: { ids: string[]; agent(id: string): Promise<string> };
  stdout?: Writable;
  onTransfer?: (name: string, files: number, bytes: number) => void;
};

function header(call: ServerCall, key: string): string[] {
  const v = call.headers[key];
  const list = v === undefined ? [] : Array.isArray(v) ? v : String(v).split(",").map((s) => s.trim());
  const encoded = call.headers[`${key}-encoded`];
  if (encoded === "true" || encoded === "1") return list.map((s) => decodeURIComponent(s.replace(/\+/g, " ")));
  return list;
}

async function first(call: ServerCall): Promise<Uint8Array> {
  for await (const m of call.messages) return m;
  throw new GrpcError(Code.INTERNAL, "no request message");
}

/** The handlers, keyed by gRPC method path. */
export function sessionHandlers(o: SessionOptions): Map<string, Handler> {
  const h = new Map<string, Handler>();
  h.set("/grpc.health.v1.Health/Check", async (call) => {
    await first(call);
    call.send(encode("HealthCheckResponse", { status: 1 }));
  });
  h.set("/moby.filesync.v1.FileSync/DiffCopy", async (call) => {
    const name = header(call, "dir-name")[0] ?? "";
    const dir = o.dirs.get(name);
    if (!dir) throw new GrpcError(Code.NOT_FOUND, `no access allowed to dir "${name}"`);
    const r = await sendDir(call, dir, {
      excludes: header(call, "exclude-patterns"),
      includes: header(call, "include-patterns"),
      followPaths: header(call, "followpaths"),
    });
    o.onTransfer?.(name, r.files, r.bytes);
  });
  h.set("/moby.filesync.v1.FileSend/DiffCopy", async (call) => {
    const out = o.output;
    if (!out) throw new GrpcError(Code.UNIMPLEMENTED, "no output was requested from this session");
    if (out.type === "local") {
      await receiveDir(call, out.dest);
      return;
    }
    // type=tar: the tarball as raw bytes in BytesMessages.
    const w: Writable = out.dest === "-" ? o.stdout ?? process.stdout : createWriteStream(out.dest);
    for await (const m of call.messages) {
      const { data } = decode<{ data?: Uint8Array }>("BytesMessage", m);
      if (data?.length && !w.write(data)) await new Promise((r) => w.once("drain", r));
    }
    if (w !== (o.stdout ?? process.stdout)) await new Promise<void>((r, j) => w.end((e?: Error) => (e ? j(e) : r())));
  });
  h.set("/moby.buildkit.secrets.v1.Secrets/GetSecret", async (call) => {
    const { ID } = decode<{ ID?: string }>("GetSecretRequest", await first(call));
    const src = o.secrets.get(ID ?? "");
    if (src === undefined) throw new GrpcError(Code.NOT_FOUND, `secret ${ID} not found`);
    const data = src.startsWith("env:")
      ? new TextEncoder().encode(process.env[src.slice(4)] ?? "")
      : new Uint8Array(await fsp.readFile(src));
    call.send(encode("GetSecretResponse", { data }));
  });
  h.set("/moby.filesync.v1.Auth/Credentials", async (call) => {
    const { Host } = decode<{ Host?: string }>("CredentialsRequest", await first(call));
    const c = await o.credentials(Host ?? "");
    call.send(encode("CredentialsResponse", c ? { Username: c.username, Secret: c.secret } : {}));
  });
  if (o.ssh?.ids.length) {
    const ssh = o.ssh;
    const known = (id: string) => {
      if (!ssh.ids.includes(id)) throw new GrpcError(Code.NOT_FOUND, `unset ssh forward key ${id}`);
    };
    h.set("/moby.sshforward.v1.SSH/CheckAgent", async (call) => {
      const { ID } = decode<{ ID?: string }>("CheckAgentRequest", await first(call));
      known(ID || "default");
      call.send(encode("CheckAgentResponse", {}));
    });
    h.set("/moby.sshforward.v1.SSH/ForwardAgent", async (call) => {
      const id = header(call, "buildkit.ssh.id")[0] || "default";
      known(id);
      const conn = net.connect(await ssh.agent(id));
      await new Promise<void>((resolve, reject) => {
        conn.once("connect", resolve);
        conn.once("error", reject);
      });
      const closed = new Promise<void>((resolve) => conn.once("close", () => resolve()));
      conn.on("error", () => {});
      conn.on("data", (d: Uint8Array) => call.send(encode("BytesMessage", { data: d })));
      (async () => {
        try {
          for await (const m of call.messages) {
            const { data } = decode<{ data?: Uint8Array }>("BytesMessage", m);
            if (data?.length) conn.write(data);
          }
        } catch { /* the server hung up */ }
        conn.end();
      })();
      await closed;
    });
  }
  return h;
}

/**
 * The header values that announce the session and its methods to BuildKit. `sharedKey` picks
 * the server-side copy a local source syncs into (BuildKit reuses it across sessions with the
 * same key): one per context directory, as the Docker CLI derives it.
 */
export function sessionHeaders(
  id: string,
  name: string,
  sharedKey: string,
  methods: Iterable<string>,
): [string, string][] {
  const out: [string, string][] = [
    ["X-Docker-Expose-Session-Uuid", id],
    ["X-Docker-Expose-Session-Name", name],
    ["X-Docker-Expose-Session-Sharedkey", sharedKey],
  ];
  for (const m of methods) out.push(["X-Docker-Expose-Session-Grpc-Method", m]);
  return out;
}
