/**
 * fsutil's DiffCopy protocol, both ends, over a stream of Packet messages:
 * - sending (BuildKit's FileSync.DiffCopy asks for the build context): one STAT packet per entry
 *   in walk order (siblings sorted, parents before children), an empty STAT to end; the
 *   receiver REQuests files by index, each answered by DATA packets and an empty DATA; FIN ends.
 * - receiving (FileSend.DiffCopy brings a type=local output back): the same from the other side,
 *   writing the files under a destination directory, never outside it.
 * Modes travel as Go's os.FileMode bits, modTime as nanoseconds.
 */
import { createReadStream, lstatSync, promises as fsp, readlinkSync } from "node:fs";
import path from "node:path";
import { walkContext } from "../ops/local_context.ts";
import { decode, encode, type Packet, PacketType, type Stat } from "../../proto/control.ts";

const GO_DIR = 2 ** 31, GO_SYMLINK = 2 ** 27, GO_DEVICE = 2 ** 26, GO_PIPE = 2 ** 25,
  GO_SOCKET = 2 ** 24, GO_SETUID = 2 ** 23, GO_SETGID = 2 ** 22, GO_CHARDEV = 2 ** 21,
  GO_STICKY = 2 ** 20;
const GO_TYPE = GO_DIR + GO_SYMLINK + GO_DEVICE + GO_PIPE + GO_SOCKET + GO_CHARDEV + 2 ** 19;

/** Unix st_mode → Go os.FileMode. */
export function goMode(unix: number): number {
  let m = unix & 0o777;
  if (unix & 0o4000) m += GO_SETUID;
  if (unix & 0o2000) m += GO_SETGID;
  if (unix & 0o1000) m += GO_STICKY;
  switch (unix & 0o170000) {
    case 0o040000:
      m += GO_DIR;
      break;
    case 0o120000:
      m += GO_SYMLINK;
      break;
    case 0o010000:
      m += GO_PIPE;
      break;
    case 0o140000:
      m += GO_SOCKET;
      break;
    case 0o020000:
      m += GO_DEVICE + GO_CHARDEV;
      break;
    case 0o060000:
      m += GO_DEVICE;
      break;
  }
  return m;
}

/** Go os.FileMode → permission bits with setuid/setgid/sticky (unix). */
export function unixPerm(go: number): number {
  let m = go & 0o777;
  if (Math.floor(go / GO_SETUID) % 2) m |= 0o4000;
  if (Math.floor(go / GO_SETGID) % 2) m |= 0o2000;
  if (Math.floor(go / GO_STICKY) % 2) m |= 0o1000;
  return m;
}

const isType = (go: number, bit: number) => Math.floor(go / bit) % 2 === 1;
const isRegular = (go: number) => Math.floor(go / 2 ** 19) % (GO_TYPE / 2 ** 19 * 2) === 0 &&
  !isType(go, GO_DIR) && !isType(go, GO_SYMLINK) && !isType(go, GO_DEVICE) && !isType(go, GO_PIPE) &&
  !isType(go, GO_SOCKET);

/** Walk order of fsutil: component by component (`a`, `a/b`, `a.b`). */
export function comparePaths(a: string, b: string): number {
  const pa = a.split("/"), pb = b.split("/");
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) return pa[i] < pb[i] ? -1 : 1;
  }
  return pa.length - pb.length;
}

export type PacketStream = {
  messages: AsyncIterable<Uint8Array>;
  send(msg: Uint8Array): void;
};

const packet = (p: Packet) => encode("Packet", p);

/** Sends `root` (filtered by the patterns) as fsutil's sender; resolves once the receiver said FIN. */
export async function sendDir(
  stream: PacketStream,
  root: string,
  opts: { excludes: string[]; includes: string[]; followPaths: string[] },
): Promise<{ files: number; bytes: number }> {
  let includes = opts.includes;
  // followpaths (the Dockerfile's local) name what must be sent even if patterns would not.
  if (opts.followPaths.length && !includes.length) includes = opts.followPaths;
  const entries = (await walkContext(root, opts.excludes, includes)).sort((a, b) =>
    comparePaths(a.path, b.path)
  );
  const files = new Map<number, string>();
  entries.forEach((e, i) => {
    const st = e.st;
    const stat: Stat = {
      path: e.path,
      mode: goMode(st.mode),
      uid: st.uid,
      gid: st.gid,
      modTime: lstatSync(path.join(root, e.path), { bigint: true }).mtimeNs,
    };
    if (st.isFile()) {
      stat.size = st.size;
      files.set(i, e.path);
    } else if (st.isSymbolicLink()) {
      stat.linkname = readlinkSync(path.join(root, e.path));
    }
    stream.send(packet({ type: PacketType.STAT, stat }));
  });
  stream.send(packet({ type: PacketType.STAT }));
  let bytes = 0, sent = 0;
  for await (const m of stream.messages) {
    const p = decode<Packet>("Packet", m);
    const type = p.type ?? 0;
    if (type === PacketType.ERR) {
      throw new Error(`error from receiver: ${new TextDecoder().decode(p.data ?? new Uint8Array())}`);
    }
    if (type === PacketType.REQ) {
      const id = p.ID ?? 0;
      const rel = files.get(id);
      if (rel === undefined) throw new Error(`invalid file id ${id}`);
      files.delete(id);
      for await (const chunk of createReadStream(path.join(root, rel), { highWaterMark: 32 * 1024 })) {
        const data = chunk as Uint8Array;
        bytes += data.length;
        stream.send(packet({ type: PacketType.DATA, ID: id, data }));
      }
      stream.send(packet({ type: PacketType.DATA, ID: id }));
      sent++;
    } else if (type === PacketType.FIN) {
      stream.send(packet({ type: PacketType.FIN }));
      break;
    }
  }
  return { files: sent, bytes };
}

/**
 * Where `rel` (from the server) goes under `dest`: `..` is clamped at the root, and no parent
 * may be a symlink (a link sent earlier must not carry a later entry outside `dest`).
 */
async function inside(dest: string, rel: string): Promise<string> {
  const clean = path.posix.normalize("/" + rel).slice(1);
  if (!clean) throw new Error(`invalid path ${JSON.stringify(rel)} from the server`);
  const parts = clean.split("/");
  let cur = dest;
  for (const p of parts.slice(0, -1)) {
    cur = path.join(cur, p);
    const st = await fsp.lstat(cur).catch(() => undefined);
    if (st?.isSymbolicLink()) {
      throw new Error(`refusing ${JSON.stringify(rel)} from the server: ${p} is a symlink`);
    }
  }
  return path.join(dest, clean);
}

/**
 * Receives a directory as fsutil's receiver into `dest` (created; existing files overwritten,
 * like BuildKit's local exporter). Ownership is the caller's, as in BuildKit's sync target.
 */
export async function receiveDir(stream: PacketStream, dest: string): Promise<{ files: number }> {
  await fsp.mkdir(dest, { recursive: true });
  const byId = new Map<number, { fh: fsp.FileHandle; stat: Stat; abs: string }>();
  const dirs: { abs: string; stat: Stat }[] = [];
  let index = 0, statsDone = false, open = 0, files = 0;
  let finSent = false;
  const maybeFin = () => {
    if (statsDone && open === 0 && !finSent) {
      finSent = true;
      stream.send(packet({ type: PacketType.FIN }));
    }
  };
  const setTimes = async (abs: string, stat: Stat, link = false) => {
    const t = Number(stat.modTime ?? 0) / 1e9;
    if (link) await fsp.lutimes(abs, t, t).catch(() => {});
    else await fsp.utimes(abs, t, t).catch(() => {});
  };
  for await (const m of stream.messages) {
    const p = decode<Packet>("Packet", m);
    const type = p.type ?? 0;
    if (type === PacketType.ERR) {
      throw new Error(`error from sender: ${new TextDecoder().decode(p.data ?? new Uint8Array())}`);
    }
    if (type === PacketType.STAT) {
      if (!p.stat) {
        statsDone = true;
        maybeFin();
        continue;
      }
      const id = index++;
      const stat = p.stat;
      const abs = await inside(dest, stat.path ?? "");
      const mode = stat.mode ?? 0;
      if (isType(mode, GO_DIR)) {
        await fsp.mkdir(abs, { recursive: true });
        dirs.push({ abs, stat });
      } else if (isType(mode, GO_SYMLINK)) {
        await fsp.rm(abs, { force: true, recursive: true });
        await fsp.symlink(stat.linkname ?? "", abs);
        await setTimes(abs, stat, true);
      } else if (isRegular(mode)) {
        await fsp.rm(abs, { force: true, recursive: true });
        if (stat.linkname) {
          // A hard link to an entry sent before.
          await fsp.link(await inside(dest, stat.linkname), abs);
          continue;
        }
        const fh = await fsp.open(abs, "w", unixPerm(mode));
        byId.set(id, { fh, stat, abs });
        open++;
        stream.send(packet({ type: PacketType.REQ, ID: id }));
      }
      // devices, fifos, sockets: not recreated by an unprivileged client
    } else if (type === PacketType.DATA) {
      const f = byId.get(p.ID ?? 0);
      if (!f) throw new Error(`unexpected data for file id ${p.ID}`);
      if (p.data?.length) await f.fh.write(p.data);
      else {
        await f.fh.chmod(unixPerm(f.stat.mode ?? 0o644));
        await f.fh.close();
        await setTimes(f.abs, f.stat);
        byId.delete(p.ID ?? 0);
        open--;
        files++;
        maybeFin();
      }
    } else if (type === PacketType.FIN) {
      break;
    }
  }
  for (const d of dirs.reverse()) {
    await fsp.chmod(d.abs, unixPerm(d.stat.mode ?? 0o755)).catch(() => {});
    await setTimes(d.abs, d.stat);
  }
  return { files };
}
