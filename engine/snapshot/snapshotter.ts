/**
 * containerd-style snapshotter with two backends.
 *
 * Layout under the snapshotter root (normally `<store>/snapshots`), one dir per key/name, named
 * by a hash of it (`<root>/<id>`):
 *   name       the key or name (debugging aid)
 *   parent     the parent snapshot's name (absent: no parent)
 *   view       marker: a read-only view
 *   committed  marker holding the committed name; only a dir whose marker matches its own name
 *              is committed. Snapshots are built in `<root>/tmp-*` and renamed into place, and
 *              commit renames the active dir onto the name's id, so a crash never leaves a
 *              half-written snapshot looking committed.
 *   fs/        overlay: the diff dir (upper while active)      copy: the full rootfs tree
 *   work/ mnt/ overlay: workdir and mountpoint (active/view)
 *   diff/      copy: the committed layer in overlay diff format
 *
 * OverlaySnapshotter mounts `overlay` with `userxattr,index=off,metacopy=off` (works as root and
 * inside a user namespace on 6.18); lowerdirs are relative to `<root>` (mount runs with
 * cwd=<root>) to keep the option string short. Mounting requires root in the current mount
 * namespace: the engine runs under `unshare --mount` so mounts vanish on exit.
 * CopySnapshotter needs no mounts: prepare copies the parent's tree (`cp -a --reflink=auto`),
 * commit computes the layer against the parent's tree and stores it as a diff dir.
 */

import * as fsp from "node:fs/promises";
import { createHash, randomBytes } from "node:crypto";
import { PassThrough, type Writable } from "node:stream";
import { applyLayer } from "./apply.ts";
import { writeLayerFromDirs, writeLayerFromUpper } from "./diff.ts";
import { run, runOk } from "./helpers.ts";
import {
  mountMaybeVolatile,
  syncFilesystem,
  volatileWanted,
  wasVolatile,
} from "./volatile.ts";

export type LayerWriteOptions = { sourceDateEpoch?: number };

/** Fills a new snapshot's (still unmounted) upper dir: engine/ops/incremental_copy.ts. */
export type Seed = (upperDir: string) => Promise<void>;

export interface Snapshotter {
  readonly kind: "overlay" | "copy";
  /**
   * new active snapshot on top of committed parent chain (parent undefined = empty); returns the
   * dir where the rootfs is visible (mounted). `seed` (overlay only; other backends and wrappers
   * may not call it) fills the empty upper dir before it is mounted (offline, as overlayfs allows).
   */
  prepare(key: string, parent?: string, seed?: Seed): Promise<{ root: string }>;
  /** read-only view of a committed snapshot's full rootfs (mounted or materialised) */
  view(key: string, parent: string): Promise<{ root: string }>;
  /** unmount active key and make it an immutable committed snapshot `name` whose diff is the upper dir */
  commit(name: string, key: string): Promise<void>;
  /** remove an active snapshot, a view or a committed snapshot (no-op when absent) */
  remove(key: string): Promise<void>;
  /** diff dir of a committed snapshot (its own layer, overlay diff format) */
  diffDir(name: string): string;
  /** write the committed snapshot's layer as an uncompressed OCI tar (ends `out`) */
  writeLayer(name: string, out: Writable, opts: LayerWriteOptions): Promise<void>;
  /** create a committed snapshot directly from a layer tar (image pulls) */
  applyLayerSnapshot(
    name: string,
    parent: string | undefined,
    tar: AsyncIterable<Uint8Array>,
  ): Promise<void>;
  /** committed ancestors, nearest first */
  parents(name: string): Promise<string[]>;
  /** when `name` was committed (ms since the epoch): the time of its layer in the history */
  createdAt(name: string): Promise<number>;
  /** sets when `name` was made (a snapshot unpacked from a cache keeps its original time) */
  setCreatedAt(name: string, ms: number): Promise<void>;
  /** true when `name` is a committed snapshot */
  exists(name: string): Promise<boolean>;
  /** disk usage of the snapshot's own diff in bytes */
  usage(name: string): Promise<number>;
}

export const OVERLAY_OPTIONS = "userxattr,index=off,metacopy=off";

function errCode(e: unknown): string | undefined {
  return (e as { code?: string })?.code;
}

async function readText(p: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(p, "utf8");
  } catch (e) {
    if (errCode(e) === "ENOENT" || errCode(e) === "ENOTDIR") return undefined;
    throw e;
  }
}

async function writeAtomic(p: string, data: string): Promise<void> {
  const tmp = `${p}.tmp-${randomBytes(4).toString("hex")}`;
  await fsp.writeFile(tmp, data);
  await fsp.rename(tmp, p);
}

async function diskUsage(dir: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (d: string) => {
    for (const name of await fsp.readdir(d)) {
      const p = d + "/" + name;
      const st = await fsp.lstat(p);
      if (st.nlink > 1 && !st.isDirectory()) {
        const k = `${st.dev}:${st.ino}`;
        if (seen.has(k)) continue;
        seen.add(k);
      }
      total += st.blocks * 512;
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return total;
}

/** Connect a tar producer to a tar consumer through a PassThrough, propagating failures. */
async function pipeTar(
  produce: (out: Writable) => Promise<void>,
  consume: (src: AsyncIterable<Uint8Array>) => Promise<unknown>,
): Promise<void> {
  const pass = new PassThrough({ highWaterMark: 1 << 20 });
  const p = produce(pass).catch((e) => {
    pass.destroy(e);
    throw e;
  });
  const c = consume(pass).catch((e) => {
    pass.destroy(e);
    throw e;
  });
  const [rp, rc] = await Promise.allSettled([p, c]);
  if (rp.status === "rejected") throw rp.reason;
  if (rc.status === "rejected") throw rc.reason;
}

/** Shared bookkeeping of both backends. */
abstract class BaseSnapshotter {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  id(name: string): string {
    return createHash("sha256").update(name).digest("hex").slice(0, 24);
  }

  dir(name: string): string {
    return `${this.root}/${this.id(name)}`;
  }

  async exists(name: string): Promise<boolean> {
    return (await readText(`${this.dir(name)}/committed`)) === name;
  }

  async createdAt(name: string): Promise<number> {
    return (await fsp.stat(`${this.dir(name)}/committed`)).mtimeMs;
  }

  async setCreatedAt(name: string, ms: number): Promise<void> {
    await fsp.utimes(`${this.dir(name)}/committed`, ms / 1000, ms / 1000);
  }

  async present(key: string): Promise<boolean> {
    return (await readText(`${this.dir(key)}/name`)) !== undefined;
  }

  async parent(name: string): Promise<string | undefined> {
    return await readText(`${this.dir(name)}/parent`);
  }

  async parents(name: string): Promise<string[]> {
    const out: string[] = [];
    let cur = await this.parent(name);
    while (cur !== undefined) {
      out.push(cur);
      if (out.length > 1000) throw new Error(`snapshot parent chain too long at ${name}`);
      cur = await this.parent(cur);
    }
    return out;
  }

  /** Both backends keep each snapshot's own diff in overlay format, so one writer serves both. */
  abstract diffDir(name: string): string;

  async writeLayer(name: string, out: Writable, opts: LayerWriteOptions = {}): Promise<void> {
    await this.requireCommitted(name);
    await writeLayerFromUpper(this.diffDir(name), out, opts);
  }

  async requireCommitted(name: string): Promise<void> {
    if (!(await this.exists(name))) throw new Error(`snapshot ${JSON.stringify(name)} not found`);
  }

  /** Make a temp dir with name/parent records; `fill` populates it; then rename to key's id. */
  async create(
    key: string,
    parent: string | undefined,
    fill: (tmp: string) => Promise<void>,
    committed: boolean,
  ): Promise<string> {
    await fsp.mkdir(this.root, { recursive: true });
    if (parent !== undefined) await this.requireCommitted(parent);
    if (await this.present(key)) throw new Error(`snapshot ${JSON.stringify(key)} already exists`);
    const tmp = `${this.root}/tmp-${randomBytes(8).toString("hex")}`;
    await fsp.mkdir(tmp);
    try {
      await fsp.writeFile(`${tmp}/name`, key);
      if (parent !== undefined) await fsp.writeFile(`${tmp}/parent`, parent);
      await fill(tmp);
      if (committed) await writeAtomic(`${tmp}/committed`, key);
      const dest = this.dir(key);
      // a leftover from a crash (never committed) may occupy the id: clear it
      if ((await readText(`${dest}/name`)) === undefined) await this.trash(dest);
      await fsp.rename(tmp, dest);
      return dest;
    } catch (e) {
      await fsp.rm(tmp, { recursive: true, force: true }).catch(() => {});
      if (errCode(e) === "ENOTEMPTY" || errCode(e) === "EEXIST") {
        throw new Error(`snapshot ${JSON.stringify(key)} already exists`);
      }
      throw e;
    }
  }

  /** Rename away then delete; refuses when a mountpoint inside is still busy. */
  async trash(dir: string): Promise<void> {
    const mnt = `${dir}/mnt`;
    try {
      await fsp.rmdir(mnt);
    } catch (e) {
      const c = errCode(e);
      if (c !== "ENOENT" && c !== "ENOTDIR") throw new Error(`${mnt} still in use: ${c}`);
    }
    const t = `${this.root}/trash-${randomBytes(8).toString("hex")}`;
    try {
      await fsp.rename(dir, t);
    } catch (e) {
      if (errCode(e) === "ENOENT") return;
      throw e;
    }
    await fsp.rm(t, { recursive: true, force: true });
  }

  /** Turn an active dir into committed snapshot `name` (marker first, then the rename). */
  async seal(name: string, key: string): Promise<void> {
    if (await this.present(name)) {
      throw new Error(`snapshot ${JSON.stringify(name)} already exists`);
    }
    const src = this.dir(key);
    await writeAtomic(`${src}/committed`, name);
    await writeAtomic(`${src}/name`, name);
    const dest = this.dir(name);
    if ((await readText(`${dest}/name`)) === undefined) await this.trash(dest);
    await fsp.rename(src, dest);
  }

  async requireActive(key: string): Promise<string> {
    const d = this.dir(key);
    if ((await readText(`${d}/name`)) !== key) {
      throw new Error(`snapshot ${JSON.stringify(key)} not found`);
    }
    if ((await readText(`${d}/committed`)) !== undefined) {
      throw new Error(`snapshot ${JSON.stringify(key)} is committed, not active`);
    }
    if ((await readText(`${d}/view`)) !== undefined) {
      throw new Error(`snapshot ${JSON.stringify(key)} is a view`);
    }
    return d;
  }
}

// ---------------------------------------------------------------------------------------------

async function mountOverlay(
  cwd: string,
  lowers: string[],
  target: string,
  upper?: { upper: string; work: string; volatile?: boolean },
): Promise<void> {
  let opts = `lowerdir=${lowers.join(":")}`;
  if (upper) opts += `,upperdir=${upper.upper},workdir=${upper.work}`;
  opts += `,${OVERLAY_OPTIONS}`;
  if (opts.length > 4000) {
    throw new Error(`overlay: too many layers (${lowers.length}) for one mount`);
  }
  if (upper?.volatile) opts += ",volatile"; // engine/snapshot/volatile.ts
  await runOk("mount", ["-t", "overlay", "overlay", "-o", opts, target], { cwd });
}

async function unmount(target: string): Promise<void> {
  // "target is busy" is transient (a just-exited sandbox process, a closing file handle): retry,
  // then detach lazily; the mount disappears once the last user lets go.
  for (let attempt = 0;; attempt++) {
    const r = await run("umount", [target]);
    if (r.code === 0 || /not mounted|no mount point|not found/i.test(r.stderr)) return;
    if (!/busy/i.test(r.stderr)) throw new Error(`umount ${target}: ${r.stderr.trim()}`);
    if (attempt >= 5) {
      const lazy = await run("umount", ["-l", target]);
      if (lazy.code === 0) return;
      throw new Error(`umount ${target}: ${r.stderr.trim()}`);
    }
    await new Promise((res) => setTimeout(res, 20 * 2 ** attempt));
  }
}

export class OverlaySnapshotter extends BaseSnapshotter implements Snapshotter {
  readonly kind = "overlay" as const;
  /** Whether active snapshots are mounted `volatile` (read once, engine/snapshot/volatile.ts). */
  #volatile?: Promise<boolean>;

  async #lowers(parent: string): Promise<string[]> {
    const chain = [parent, ...(await this.parents(parent))];
    return chain.map((n) => `${this.id(n)}/fs`);
  }

  async #empty(): Promise<string> {
    await fsp.mkdir(`${this.root}/.empty`, { recursive: true });
    return ".empty";
  }

  async prepare(key: string, parent?: string, seed?: Seed): Promise<{ root: string }> {
    const dir = await this.create(key, parent, async (tmp) => {
      for (const d of ["fs", "work", "mnt"]) await fsp.mkdir(`${tmp}/${d}`);
      if (seed) await seed(`${tmp}/fs`);
    }, false);
    const id = this.id(key);
    try {
      const lowers = parent !== undefined ? await this.#lowers(parent) : [await this.#empty()];
      await this.#mountActive(lowers, dir, id);
    } catch (e) {
      await this.trash(dir).catch(() => {});
      throw e;
    }
    return { root: `${dir}/mnt` };
  }

  /** Mounts an active snapshot `volatile` where the kernel allows it, else without. */
  async #mountActive(lowers: string[], dir: string, id: string): Promise<void> {
    this.#volatile ??= volatileWanted(this.root);
    const wanted = await this.#volatile;
    const volatile = await mountMaybeVolatile({
      root: this.root,
      workDir: `${dir}/work`,
      wanted,
      mount: (volatile) =>
        mountOverlay(this.root, lowers, `${dir}/mnt`, {
          upper: `${id}/fs`,
          work: `${id}/work`,
          volatile,
        }),
    });
    if (wanted && !volatile) this.#volatile = Promise.resolve(false);
  }

  async view(key: string, parent: string): Promise<{ root: string }> {
    const dir = await this.create(key, parent, async (tmp) => {
      await fsp.mkdir(`${tmp}/mnt`);
      await fsp.writeFile(`${tmp}/view`, "");
    }, false);
    try {
      const lowers = await this.#lowers(parent);
      // a lower-only overlay needs two layers: pad with an empty dir
      if (lowers.length === 1) lowers.push(await this.#empty());
      await mountOverlay(this.root, lowers, `${dir}/mnt`);
    } catch (e) {
      await this.trash(dir).catch(() => {});
      throw e;
    }
    return { root: `${dir}/mnt` };
  }

  async commit(name: string, key: string): Promise<void> {
    const dir = await this.requireActive(key);
    await unmount(`${dir}/mnt`);
    await fsp.rmdir(`${dir}/mnt`);
    // A volatile mount's umount did not sync (a plain one's did): the one sync is ours, after
    // the marker and rename, before the caller records the snapshot anywhere.
    const sync = await wasVolatile(`${dir}/work`);
    // Also removes the kernel's incompat/volatile mark (the pair is never mounted again).
    await fsp.rm(`${dir}/work`, { recursive: true, force: true });
    await this.seal(name, key);
    if (sync) {
      try {
        await syncFilesystem(this.dir(name));
      } catch (e) {
        await this.trash(this.dir(name)).catch(() => {});
        throw e;
      }
    }
  }

  async remove(key: string): Promise<void> {
    const dir = this.dir(key);
    if ((await readText(`${dir}/name`)) === undefined) {
      await this.trash(dir);
      return;
    }
    await unmount(`${dir}/mnt`).catch(() => {});
    await this.trash(dir);
  }

  diffDir(name: string): string {
    return `${this.dir(name)}/fs`;
  }

  async applyLayerSnapshot(
    name: string,
    parent: string | undefined,
    tar: AsyncIterable<Uint8Array>,
  ): Promise<void> {
    const lowers = parent === undefined
      ? []
      : [parent, ...(await this.parents(parent))].map((n) => this.diffDir(n));
    await this.create(name, parent, async (tmp) => {
      await applyLayer(tar, `${tmp}/fs`, { format: "overlay", lowers });
    }, true);
  }

  async usage(name: string): Promise<number> {
    return await diskUsage(this.diffDir(name));
  }
}

// ---------------------------------------------------------------------------------------------

export class CopySnapshotter extends BaseSnapshotter implements Snapshotter {
  readonly kind = "copy" as const;

  async #copyParent(parent: string | undefined, dest: string): Promise<void> {
    if (parent === undefined) {
      await fsp.mkdir(dest);
      return;
    }
    await runOk("cp", ["-a", "--reflink=auto", "--", `${this.dir(parent)}/fs`, dest]);
  }

  async prepare(key: string, parent?: string): Promise<{ root: string }> {
    const dir = await this.create(key, parent, async (tmp) => {
      await this.#copyParent(parent, `${tmp}/fs`);
      await fsp.writeFile(`${tmp}/copied-at`, String(Date.now()));
    }, false);
    return { root: `${dir}/fs` };
  }

  /** The parent's materialised tree itself: callers must treat it as read-only. */
  async view(key: string, parent: string): Promise<{ root: string }> {
    await this.create(key, parent, async (tmp) => {
      await fsp.writeFile(`${tmp}/view`, "");
    }, false);
    return { root: `${this.dir(parent)}/fs` };
  }

  async commit(name: string, key: string): Promise<void> {
    const dir = await this.requireActive(key);
    const parent = await this.parent(key);
    const copiedAt = Number(await readText(`${dir}/copied-at`));
    await fsp.rm(`${dir}/diff`, { recursive: true, force: true });
    await pipeTar(
      (out) =>
        writeLayerFromDirs(
          parent !== undefined ? `${this.dir(parent)}/fs` : null,
          `${dir}/fs`,
          out,
          {
            copiedAt: parent !== undefined && Number.isFinite(copiedAt) ? copiedAt : undefined,
          },
        ),
      (src) => applyLayer(src, `${dir}/diff`, { format: "overlay", quiet: true }),
    );
    await this.seal(name, key);
  }

  async remove(key: string): Promise<void> {
    await this.trash(this.dir(key));
  }

  diffDir(name: string): string {
    return `${this.dir(name)}/diff`;
  }

  async applyLayerSnapshot(
    name: string,
    parent: string | undefined,
    tar: AsyncIterable<Uint8Array>,
  ): Promise<void> {
    await this.create(name, parent, async (tmp) => {
      await applyLayer(tar, `${tmp}/diff`, {
        format: "overlay",
        lowers: parent === undefined ? [] : [`${this.dir(parent)}/fs`],
      });
      await this.#copyParent(parent, `${tmp}/fs`);
      await pipeTar(
        (out) => writeLayerFromUpper(`${tmp}/diff`, out),
        (src) => applyLayer(src, `${tmp}/fs`, { format: "merged", quiet: true }),
      );
    }, true);
  }

  async usage(name: string): Promise<number> {
    return await diskUsage(this.diffDir(name));
  }
}

// ---------------------------------------------------------------------------------------------

/** Probe an overlay mount under `root`; fall back to copy snapshots with a notice. */
export async function detectSnapshotter(root: string): Promise<Snapshotter> {
  await fsp.mkdir(root, { recursive: true });
  // A store keeps the backend it was created with (the two lay out snapshots differently);
  // TSK_SNAPSHOTTER=copy|overlay chooses for a new store.
  const recorded = (await readText(`${root}/backend`))?.trim();
  const wanted = recorded || process.env.TSK_SNAPSHOTTER;
  if (wanted === "copy") {
    if (!recorded) await writeAtomic(`${root}/backend`, "copy\n");
    return new CopySnapshotter(root);
  }
  // Probed when the store was made: mounting works here (a failure later says why).
  if (recorded === "overlay") return new OverlaySnapshotter(root);
  const probe = `${root}/probe-${randomBytes(6).toString("hex")}`;
  let reason = "";
  try {
    for (const d of ["l1", "l2", "u", "w", "m"]) {
      await fsp.mkdir(`${probe}/${d}`, { recursive: true });
    }
    await fsp.writeFile(`${probe}/l1/f`, "x");
    await mountOverlay(probe, ["l1", "l2"], `${probe}/m`, { upper: "u", work: "w" });
    try {
      await fsp.unlink(`${probe}/m/f`); // must leave a whiteout in the upper dir
    } finally {
      await unmount(`${probe}/m`);
    }
    const st = await fsp.lstat(`${probe}/u/f`);
    if (!st.isCharacterDevice() || st.rdev !== 0) reason = "no whiteout created";
  } catch (e) {
    reason = String((e as Error).message ?? e).split("\n")[0];
  } finally {
    await fsp.rm(probe, { recursive: true, force: true }).catch(() => {});
  }
  if (!reason) {
    if (!recorded) await writeAtomic(`${root}/backend`, "overlay\n");
    return new OverlaySnapshotter(root);
  }
  if (wanted === "overlay") {
    throw new Error(
      `this store uses overlay snapshots, but overlayfs cannot mount here: ${reason}`,
    );
  }
  const store = root.replace(/\/snapshots\/?$/, "");
  console.error(
    `tsk: overlayfs cannot be mounted on ${store} (${reason.replace(/^.*?: (?=[^:]+$)/, "")}): ` +
      `using copy snapshots (slower); put the store on a volume or tmpfs: ` +
      `\`-v tsk-store:${store}\``,
  );
  await writeAtomic(`${root}/backend`, "copy\n");
  return new CopySnapshotter(root);
}
