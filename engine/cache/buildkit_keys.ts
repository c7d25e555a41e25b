/**
 * BuildKit-compatible cache keys, for the ops whose keys tsk can reproduce byte for byte (checked
 * against the lab dockerd's embedded BuildKit v0.8): image sources (`buildkit.source.v0:` + the
 * resolved manifest's key, or the chain ID of the image's diff_ids), exec ops (`buildkit.exec.v0`:
 * Go's encoding/json of the op, selectors and proxy env cleared, the lone root mount left out),
 * file ops without owners (`buildkit.file.v0`: each action's JSON, a copy's source by base name)
 * and, for a copy of one path, BuildKit's content-based key of
 * that file or directory, from the context or from another stage's or an image's result
 * (`COPY --from`). A record's digest is `sha256("<cache map digest>@<output>")` (BuildKit's
 * rootKey); records of ops with inputs are matched through their input links. Other copies
 * (wildcards, several sources) are keyed by content hashes tsk does not reproduce: not claimed.
 */
import { createHash } from "node:crypto";
import type { Vertex } from "../llb/load.ts";
import { goBase64, goJSONInt, goJSONString } from "../llb/gojson.ts";
import { chainIds } from "../ops/source_image.ts";

import { Buffer } from "node:buffer";

const sha = (s: string) => "sha256:" + createHash("sha256").update(s).digest("hex");

/** BuildKit's rootKey: the record digest of output `output` of a cache map digest. */
export function rootKey(dgst: string, output: number): string {
  return sha(`${dgst}@${output}`);
}

/** An image source as resolved: its config's diff_ids and the digest its reference named. */
export type ImageInfo = { diffIds: string[]; mainDigest: string };
export type ImageInfoOf = (v: Vertex) => Promise<ImageInfo>;

type Obj = Record<string, unknown>;

const str = (s: unknown) => goJSONString(String(s));
const strs = (a: unknown) => `[${(a as string[]).map(str).join(",")}]`;

/** Go's json.Marshal of pb.Meta (v0.8 fields), proxy env dropped, extra host IPs cleared. */
function metaJSON(m: Obj): string {
  const f: string[] = [];
  if ((m.args as string[] | undefined)?.length) f.push(`"args":${strs(m.args)}`);
  if ((m.env as string[] | undefined)?.length) f.push(`"env":${strs(m.env)}`);
  if (m.cwd) f.push(`"cwd":${str(m.cwd)}`);
  if (m.user) f.push(`"user":${str(m.user)}`);
  const hosts = (m.extraHosts as Obj[] | undefined) ?? [];
  if (hosts.length) {
    f.push(
      `"extraHosts":[${hosts.map((h) => (h.Host ? `{"Host":${str(h.Host)}}` : "{}")).join(",")}]`,
    );
  }
  if (m.hostname) f.push(`"hostname":${str(m.hostname)}`);
  return `{${f.join(",")}}`;
}

function optJSON(o: Obj | undefined, keys: [string, "s" | "n" | "b"][]): string {
  const f: string[] = [];
  for (const [k, t] of keys) {
    const v = o?.[k];
    if (!v) continue;
    f.push(`"${k}":${t === "s" ? str(v) : t === "n" ? goJSONInt(Number(v)) : "true"}`);
  }
  return `{${f.join(",")}}`;
}

function mountJSON(m: Obj): string {
  const f = [`"input":${goJSONInt(Number(m.input ?? 0))}`];
  if (m.dest) f.push(`"dest":${str(m.dest)}`);
  f.push(`"output":${goJSONInt(Number(m.output ?? 0))}`);
  if (m.readonly) f.push(`"readonly":true`);
  if (m.mountType) f.push(`"mountType":${goJSONInt(Number(m.mountType))}`);
  if (m.cacheOpt) {
    f.push(`"cacheOpt":${optJSON(m.cacheOpt as Obj, [["ID", "s"], ["sharing", "n"]])}`);
  }
  const secret: [string, "s" | "n" | "b"][] = [["ID", "s"], ["uid", "n"], ["gid", "n"], [
    "mode",
    "n",
  ], ["optional", "b"]];
  if (m.secretOpt) f.push(`"secretOpt":${optJSON(m.secretOpt as Obj, secret)}`);
  if (m.SSHOpt) f.push(`"SSHOpt":${optJSON(m.SSHOpt as Obj, secret)}`);
  if (m.resultID) f.push(`"resultID":${str(m.resultID)}`);
  return `{${f.join(",")}}`;
}

/** The exec op's cache map digest as BuildKit v0.8 computes it; undefined if it cannot be. */
export function execCacheMapDigest(v: Vertex): string | undefined {
  const exec = v.op.exec as Obj | undefined;
  if (!exec) return undefined;
  // Fields v0.8 does not know change the op's meaning: never claim a match for them.
  if ((exec.secretenv as unknown[] | undefined)?.length) return undefined;
  const meta = (exec.meta ?? {}) as Obj;
  if ((meta.ulimit as unknown[] | undefined)?.length || meta.cgroupParent) return undefined;
  if ((meta.validExitCodes as unknown[] | undefined)?.length) return undefined;
  let mounts = (exec.mounts ?? []) as Obj[];
  if (mounts.some((m) => m.TmpfsOpt || m.contentCache)) return undefined;
  const m0 = mounts[0];
  if (
    mounts.length === 1 && m0.dest === "/" && !m0.readonly && !m0.mountType && !m0.cacheOpt &&
    !m0.SSHOpt && !m0.secretOpt && !m0.resultID
  ) mounts = [];
  const f = [`"meta":${metaJSON(meta)}`];
  if (mounts.length) f.push(`"mounts":[${mounts.map(mountJSON).join(",")}]`);
  if (exec.network) f.push(`"network":${goJSONInt(Number(exec.network))}`);
  if (exec.security) f.push(`"security":${goJSONInt(Number(exec.security))}`);
  const p = (v.op.platform ?? {}) as Obj;
  const os = String(p.OS ?? "linux"), arch = String(p.Architecture ?? "amd64");
  const json = `{"Type":"buildkit.exec.v0","Exec":{${f.join(",")}},"OS":${str(os)},"Arch":${
    str(arch)
  }${p.Variant ? `,"Variant":${str(p.Variant)}` : ""}}`;
  return sha(json);
}

/**
 * A file op without copies (WORKDIR's mkdir, mkfile, rm) as BuildKit v0.8 keys it: the JSON of
 * each action, base64 in the outer JSON (Go's []byte), and the action indexes unless they are
 * the usual chain. Copies are keyed by file content hashes (not reproduced); owners are left out
 * (not claimed) too.
 */
export function fileCacheMapDigest(v: Vertex): string | undefined {
  const actions = ((v.op.file as Obj | undefined)?.actions ?? []) as Obj[];
  if (!actions.length) return undefined;
  const parts: string[] = [];
  const indexes: number[][] = [];
  for (const a of actions) {
    let json: string;
    const mk = (a.mkdir ?? a.mkfile) as Obj | undefined;
    if (mk) {
      if (mk.owner) return undefined;
      const f: string[] = [];
      if (mk.path) f.push(`"path":${str(mk.path)}`);
      if (mk.mode) f.push(`"mode":${goJSONInt(Number(mk.mode))}`);
      if (a.mkdir && mk.makeParents) f.push(`"makeParents":true`);
      const data = mk.data as Uint8Array | undefined;
      if (a.mkfile && data?.length) f.push(`"data":"${goBase64(data)}"`);
      if (mk.timestamp !== undefined && Number(mk.timestamp) !== 0) {
        f.push(`"timestamp":${goJSONInt(mk.timestamp as number | bigint)}`);
      }
      json = `{${f.join(",")}}`;
    } else if (a.copy) {
      const c = a.copy as Obj;
      if (c.owner) return undefined;
      const sec = Number(a.secondaryInput ?? 0);
      // The source path is keyed by content (slowKeys): only its base name is in the JSON.
      const src = sec !== -1 && sec < v.inputs.length ? goPathBase(String(c.src ?? "")) : c.src;
      const f: string[] = [];
      if (src) f.push(`"src":${str(src)}`);
      if (c.dest) f.push(`"dest":${str(c.dest)}`);
      if (c.mode) f.push(`"mode":${goJSONInt(Number(c.mode))}`);
      for (
        const k of [
          "followSymlink",
          "dirCopyContents",
          "attemptUnpackDockerCompatibility",
          "createDestPath",
          "allowWildcard",
          "allowEmptyWildcard",
        ]
      ) if (c[k]) f.push(`"${k}":true`);
      if (c.timestamp !== undefined && Number(c.timestamp) !== 0) {
        f.push(`"timestamp":${goJSONInt(c.timestamp as number | bigint)}`);
      }
      json = `{${f.join(",")}}`;
    } else if (a.rm) {
      const rm = a.rm as Obj;
      const f: string[] = [];
      if (rm.path) f.push(`"path":${str(rm.path)}`);
      if (rm.allowNotFound) f.push(`"allowNotFound":true`);
      if (rm.allowWildcard) f.push(`"allowWildcard":true`);
      json = `{${f.join(",")}}`;
    } else return undefined;
    parts.push(`"${Buffer.from(json).toString("base64")}"`);
    indexes.push([Number(a.input ?? 0), Number(a.secondaryInput ?? 0), Number(a.output ?? 0)]);
  }
  const n = indexes.length;
  const usual = indexes.every((x, i) =>
    (i === 0 ? x[0] === 0 : x[0] === n + i - 1) && (x[1] === -1 || x[1] === 1) &&
    (i === n - 1 ? x[2] === 0 : x[2] === -1)
  );
  const idx = usual ? "" : `,"indexes":[${indexes.map((x) => `[${x.join(",")}]`).join(",")}]`;
  return sha(`{"Type":"buildkit.file.v0","Actions":[${parts.join(",")}]${idx}}`);
}

/** Go's path.Base. */
function goPathBase(p: string): string {
  if (p === "") return ".";
  const t = p.replace(/\/+$/, "");
  if (t === "") return "/";
  return t.slice(t.lastIndexOf("/") + 1);
}

/** BuildKit's content hash of path `p` of a local source (buildkit_contenthash.ts). */
export type ContextChecksumOf = (local: Vertex, p: string) => Promise<string | undefined>;
/**
 * BuildKit's content hash of path `p` in output `index` of another vertex (a stage's result or an
 * image: `COPY --from`, buildkit_snapshot_hash.ts); undefined when it is not available.
 */
export type StageChecksumOf = (
  input: Vertex,
  index: number,
  p: string,
) => Promise<string | undefined>;

/**
 * BuildKit's content-based ("slow") keys of a copy's source inputs, as record digests by input
 * index: `rootKey(sha256(<content hash of the selected path>), -1)`. Reproduced for a copy with
 * one non-wildcard source path per input, from a local source or (with `stage`) from another
 * stage's or an image's result; other copies (wildcards, several sources) are not claimed.
 */
export async function slowKeys(
  v: Vertex,
  checksum: ContextChecksumOf,
  stage?: StageChecksumOf,
): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  const actions = ((v.op.file as Obj | undefined)?.actions ?? []) as Obj[];
  const sels = new Map<number, Set<string>>();
  for (const a of actions) {
    const c = a.copy as Obj | undefined;
    const sec = Number(a.secondaryInput ?? 0);
    if (!c || sec === -1 || sec >= v.inputs.length) continue;
    const set = sels.get(sec) ?? new Set<string>();
    set.add(String(c.src ?? ""));
    sels.set(sec, set);
  }
  for (const [i, set] of sels) {
    if (set.size !== 1) return new Map();
    const src = [...set][0];
    const input = v.inputs[i].vertex;
    if (/[*?[\\]/.test(src)) return new Map();
    const sum = String(input.op.source?.identifier ?? "").startsWith("local://")
      ? await checksum(input, src)
      : await stage?.(input, v.inputs[i].index, src);
    if (!sum) return new Map();
    out.set(i, rootKey(sha(sum), -1));
  }
  return out;
}

/** Exec input links carry no selector unless a mount selects a path (not matched here). */
export function execInputsMatchable(v: Vertex): boolean {
  const mounts = ((v.op.exec as Obj | undefined)?.mounts ?? []) as Obj[];
  return !mounts.some((m) => m.selector && Number(m.input ?? 0) >= 0);
}

/**
 * BuildKit cache map digests of a vertex (alternatives), or [] when its key depends on something
 * tsk does not reproduce.
 */
export async function cacheMapDigests(v: Vertex, image: ImageInfoOf): Promise<string[]> {
  const src = v.op.source as Obj | undefined;
  if (src) {
    if (!String(src.identifier ?? "").startsWith("docker-image://")) return [];
    const info = await image(v);
    const p = (v.op.platform ?? {}) as Obj;
    // Key 0: the manifest (or index) the reference resolved to, for the platform.
    const main = sha(
      `{"Digest":${str(info.mainDigest)},"OS":${str(p.OS ?? "linux")},"Arch":${
        str(p.Architecture ?? "amd64")
      }${p.Variant ? `,"Variant":${str(p.Variant)}` : ""}}`,
    );
    const out = [sha(`buildkit.source.v0:${main}`)];
    // Key 1: the chain ID of the config's diff_ids (the same image from any registry).
    if (info.diffIds.length) {
      const chain = chainIds(info.diffIds);
      out.push(sha(`buildkit.source.v0:${chain[chain.length - 1]}`));
    }
    return out;
  }
  if (v.op.exec && execInputsMatchable(v)) {
    const d = execCacheMapDigest(v);
    return d ? [d] : [];
  }
  if (v.op.file) {
    const d = fileCacheMapDigest(v);
    return d ? [d] : [];
  }
  return [];
}
