/**
 * The SSH agent a `RUN --mount=type=ssh` step talks to: a Unix socket tsk listens on for the
 * step's duration, either forwarding each connection to the user's agent (`--ssh
 * default=$SSH_AUTH_SOCK`) or answering the agent protocol itself from keys held in memory
 * (`--ssh ID=KEYFILE…`: identities and signatures only; everything else is refused). The socket
 * lives in a private directory on a tmpfs ($XDG_RUNTIME_DIR, else /dev/shm) and is removed when
 * the step ends (or by the next tsk, when this one was killed); it gets the mount's owner and
 * mode. No key material is ever written: keys stay in this process's memory.
 */
import { mkdtempSync, promises as fsp, readdirSync, rmSync, statSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { type AgentKey, sshString } from "./keys.ts";

/** What `--ssh ID=…` gave: an agent socket to forward to, or keys to serve. */
export type SshSource = { socket: string } | { keys: AgentKey[] };

const FAILURE = 5;
const REQUEST_IDENTITIES = 11;
const IDENTITIES_ANSWER = 12;
const SIGN_REQUEST = 13;
const SIGN_RESPONSE = 14;

function frame(type: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length + 1);
  head[4] = type;
  return Buffer.concat([head, body]);
}

/** One agent-protocol reply for one request message (type byte + body). */
export function agentReply(keys: AgentKey[], msg: Buffer): Buffer {
  const type = msg[0];
  try {
    if (type === REQUEST_IDENTITIES) {
      const n = Buffer.alloc(4);
      n.writeUInt32BE(keys.length);
      return frame(
        IDENTITIES_ANSWER,
        Buffer.concat([n, ...keys.flatMap((k) => [sshString(k.blob), sshString(k.comment)])]),
      );
    }
    if (type === SIGN_REQUEST) {
      let o = 1;
      const take = () => {
        const len = msg.readUInt32BE(o);
        const v = msg.subarray(o + 4, o + 4 + len);
        if (v.length !== len) throw new Error("truncated");
        o += 4 + len;
        return v;
      };
      const blob = take();
      const data = take();
      const flags = o + 4 <= msg.length ? msg.readUInt32BE(o) : 0;
      const key = keys.find((k) => k.blob.equals(blob));
      if (key) return frame(SIGN_RESPONSE, sshString(key.sign(data, flags)));
    }
  } catch {
    // malformed request: fall through to failure
  }
  return frame(FAILURE);
}

function serveKeys(keys: AgentKey[], conn: net.Socket): void {
  let buf = Buffer.alloc(0);
  conn.on("data", (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 4) {
      const len = buf.readUInt32BE(0);
      if (len > 256 * 1024) {
        conn.destroy();
        return;
      }
      if (buf.length < 4 + len) break;
      const msg = buf.subarray(4, 4 + len);
      buf = buf.subarray(4 + len);
      conn.write(agentReply(keys, msg));
    }
  });
  conn.on("error", () => {});
}

function forward(upstream: string, conn: net.Socket): void {
  const up = net.connect(upstream);
  conn.pipe(up).pipe(conn);
  up.on("error", () => conn.destroy());
  conn.on("error", () => up.destroy());
}

/** Whether a process id is alive (EPERM: alive, someone else's). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Removes socket dirs that tsk processes killed before their cleanup left in `base`. */
export function removeDeadSocketDirs(base: string): void {
  let names: string[] = [];
  try {
    names = readdirSync(base);
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^tsk-ssh-(\d+)-/.exec(n);
    if (m && !alive(Number(m[1]))) {
      try {
        rmSync(path.join(base, n), { recursive: true, force: true });
      } catch {
        // another user's: not ours to remove
      }
    }
  }
}

/**
 * A private directory on a tmpfs for agent sockets (never a persistent disk), named after this
 * process so a later tsk removes it if this one is killed.
 */
function socketDir(): string {
  const candidates = [process.env.XDG_RUNTIME_DIR, "/dev/shm", os.tmpdir()].filter(
    (d): d is string => !!d,
  );
  for (const base of candidates) {
    try {
      if (!statSync(base).isDirectory()) continue;
      removeDeadSocketDirs(base);
      return mkdtempSync(path.join(base, `tsk-ssh-${process.pid}-`));
    } catch {
      // not usable
    }
  }
  return mkdtempSync(path.join(os.tmpdir(), `tsk-ssh-${process.pid}-`));
}

export type AgentSocket = { path: string; close(): Promise<void> };

/** Listens on a new socket for `src`, owned uid:gid with `mode`, until close(). */
export async function startAgent(
  src: SshSource,
  owner: { uid: number; gid: number; mode: number },
): Promise<AgentSocket> {
  const dir = socketDir();
  const sock = path.join(dir, "agent.sock");
  const conns = new Set<net.Socket>();
  const server = net.createServer((conn) => {
    conns.add(conn);
    conn.on("close", () => conns.delete(conn));
    if ("socket" in src) forward(src.socket, conn);
    else serveKeys(src.keys, conn);
  });
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  process.once("exit", removeDir);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(sock, () => resolve());
    });
    await fsp.chmod(dir, 0o711);
    await fsp.chown(sock, owner.uid, owner.gid).catch(() => {});
    await fsp.chmod(sock, owner.mode);
  } catch (e) {
    server.close();
    removeDir();
    throw e;
  }
  return {
    path: sock,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const c of conns) c.destroy();
        removeDir();
        process.off("exit", removeDir);
      }),
  };
}
