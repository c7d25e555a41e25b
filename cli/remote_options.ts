/**
 * Build options a remote build sends to the BuildKit: `--cache-to`/`--cache-from` as
 * SolveRequest.Cache entries with BuildKit's attrs, and `--build-context` for the server's
 * Dockerfile frontend (`context:NAME` frontend attrs, needing BuildKit v0.10's named contexts).
 * What the server cannot do is refused here with a message naming the reason.
 */
import path from "node:path";
import { parseCacheFrom, parseCacheTo } from "./cache_flag.ts";
import { UsageError } from "./output_flag.ts";
import type { CacheOptionsEntry } from "../proto/control.ts";

/** tsk-only cache attrs a BuildKit does not know. */
const TSK_ONLY = ["cache-mounts"];

function entry(type: string, attrs: Record<string, string>): CacheOptionsEntry {
  const a = { ...attrs };
  delete a.type;
  for (const k of TSK_ONLY) delete a[k];
  return { Type: type, Attrs: a };
}

const LOCAL_CACHE =
  "type=local cache is not supported with --addr (BuildKit reads and writes it through a content store the client serves in the session, which tsk does not offer): use type=registry or type=inline";

/** `--cache-to`/`--cache-from` → BuildKit's CacheOptions (Exports, Imports). */
export function remoteCache(cacheTo: string[], cacheFrom: string[], exportCache: string[] = [], importCache: string[] = []): {
  Exports: CacheOptionsEntry[];
  Imports: CacheOptionsEntry[];
} {
  const Exports: CacheOptionsEntry[] = [];
  const Imports: CacheOptionsEntry[] = [];
  const to = [...cacheTo.map((s) => [s, "--cache-to"]), ...exportCache.map((s) => [s, "--export-cache"])];
  const from = [...cacheFrom.map((s) => [s, "--cache-from"]), ...importCache.map((s) => [s, "--import-cache"])];
  for (const [s, flag] of to) {
    const c = parseCacheTo(s, flag);
    if (c.type === "local") throw new UsageError(`${flag} ${s}: ${LOCAL_CACHE}`);
    if (c.cacheMounts) throw new UsageError(`${flag} ${s}: cache-mounts=true is tsk's own and not sent to a BuildKit`);
    const attrs = { ...c.attrs };
    if (c.type === "registry") {
      attrs.ref = c.ref!;
      delete attrs.name;
    }
    Exports.push(entry(c.type, attrs));
  }
  for (const [s, flag] of from) {
    const c = parseCacheFrom(s, flag);
    if (c.type === "local") throw new UsageError(`${flag} ${s}: ${LOCAL_CACHE}`);
    const attrs = { ...c.attrs };
    if (c.ref) attrs.ref = c.ref;
    delete attrs.name;
    Imports.push(entry(c.type, attrs));
  }
  return { Exports, Imports };
}

export type RemoteContext = { attr: string; value: string; local?: { name: string; dir: string } };

/**
 * `--build-context NAME=VALUE` for the server's Dockerfile frontend (BuildKit v0.10+): a
 * directory is a session local `context:NAME`, images and URLs pass as the frontend takes them.
 */
export function remoteFrontendContexts(list: string[]): RemoteContext[] {
  return list.map((item) => {
    const eq = item.indexOf("=");
    if (eq <= 0 || eq === item.length - 1) {
      throw new UsageError(`invalid --build-context ${JSON.stringify(item)}: expected NAME=VALUE`);
    }
    const name = item.slice(0, eq);
    const value = item.slice(eq + 1);
    const attr = `context:${name}`;
    if (/^(docker-image|https?|git|ssh):\/\//.test(value) || /^[\w.-]+@[\w.-]+:/.test(value) || value.startsWith("target:")) {
      return { attr, value };
    }
    if (value.startsWith("oci-layout://")) {
      throw new UsageError(
        `--build-context ${item}: an oci-layout on this machine cannot be read by a remote BuildKit: push it and use docker-image://`,
      );
    }
    const local = `context:${name}`;
    return { attr, value: `local:${local}`, local: { name: local, dir: path.resolve(value.replace(/^file:\/\//, "")) } };
  });
}

/** Whether a BuildKit version ("v0.10.6", "0.8.3") has the Dockerfile frontend's named contexts. */
export function hasNamedContexts(version: string | undefined): boolean {
  const m = /^v?(\d+)\.(\d+)/.exec(version ?? "");
  return !!m && (Number(m[1]) > 0 || Number(m[2]) >= 10);
}
