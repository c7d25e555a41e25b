/**
 * Resolving a Dockerfile USER string against the rootfs' /etc/passwd and /etc/group, with the
 * semantics of BuildKit (oci.GetUser → runc's user.GetExecUser):
 *  - '' → root (0:0); 'uid:gid' both numeric (or 'root') → taken as is, no files read;
 *  - 'name' / 'uid' → passwd entry by name or uid; an unknown numeric uid is allowed (gid 0);
 *    supplementary groups are the /etc/group entries listing the user's name;
 *  - 'user:group' → the group by name or gid (an unknown numeric gid is allowed), no
 *    supplementary groups.
 * Errors read like BuildKit's: "unable to find user app: no matching entries in passwd file".
 */
import { readFileSync } from "node:fs";
import { resolveInRoot } from "./rootpath.ts";
import { type GroupEntry, parseGroup, parsePasswd, type PasswdEntry } from "./passwd.ts";

export type ResolvedUser = { uid: number; gid: number; groups: number[]; home: string };

export function resolveUser(rootfs: string, user: string): ResolvedUser {
  const fast = parseUidGid(user);
  if (fast) return { ...fast, groups: [], home: homeOf(rootfs, fast.uid) };

  const colon = user.indexOf(":");
  const userArg = colon < 0 ? user : user.slice(0, colon);
  const groupArg = colon < 0 ? "" : user.slice(colon + 1);
  const uidArg = parseId(userArg);
  const gidArg = parseId(groupArg);

  const passwd = readPasswd(rootfs);
  const match = (passwd ?? []).find((e) =>
    uidArg === undefined ? e.name === userArg : e.name === userArg || e.uid === uidArg
  );
  let res: PasswdEntry;
  if (match) res = { ...match };
  else if (uidArg !== undefined) res = { name: "", uid: uidArg, gid: 0, home: "/", shell: "" };
  else throw new Error(`unable to find user ${userArg}: no matching entries in passwd file`);

  let groups: number[] = [];
  if (groupArg !== "" || res.name !== "") {
    const all = readGroup(rootfs) ?? [];
    if (groupArg !== "") {
      const g = all.find((e) => e.name === groupArg || (gidArg !== undefined && e.gid === gidArg));
      if (g) res.gid = g.gid;
      else if (gidArg !== undefined) res.gid = gidArg;
      else throw new Error(`unable to find group ${groupArg}: no matching entries in group file`);
    } else {
      groups = all.filter((g) => g.members.includes(res.name)).map((g) => g.gid);
    }
  }
  return { uid: res.uid, gid: res.gid, groups, home: res.home || "/" };
}

/** BuildKit's fast path: both parts given and numeric (or 'root'). */
function parseUidGid(s: string): { uid: number; gid: number } | undefined {
  if (s === "") return { uid: 0, gid: 0 };
  const parts = s.split(":");
  if (parts.length !== 2) return undefined;
  const uid = parts[0] === "root" ? 0 : parseId(parts[0]);
  const gid = parts[1] === "root" ? 0 : parseId(parts[1]);
  if (uid === undefined || gid === undefined) return undefined;
  return { uid, gid };
}

function parseId(s: string): number | undefined {
  if (!/^[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 0xffffffff ? n : undefined;
}

function readRootFile(rootfs: string, path: string): string | undefined {
  try {
    return readFileSync(resolveInRoot(rootfs, path), "utf8");
  } catch {
    return undefined;
  }
}

function readPasswd(rootfs: string): PasswdEntry[] | undefined {
  const text = readRootFile(rootfs, "/etc/passwd");
  return text === undefined ? undefined : parsePasswd(text);
}

function readGroup(rootfs: string): GroupEntry[] | undefined {
  const text = readRootFile(rootfs, "/etc/group");
  return text === undefined ? undefined : parseGroup(text);
}

/** HOME for a uid: its passwd entry's home, else "/" (what runc sets when HOME is unset). */
function homeOf(rootfs: string, uid: number): string {
  return readPasswd(rootfs)?.find((e) => e.uid === uid)?.home || "/";
}
