/**
 * User and group lookup in a container root filesystem: parses <root>/etc/passwd and
 * <root>/etc/group (resolved inside the root, like runc's user package as BuildKit uses it).
 * Numeric names pass through. Errors read like runc's ("unable to find user app: no matching
 * entries in passwd file").
 */
import * as fsp from "node:fs/promises";
import { resolveInRoot } from "./root_path.ts";
import {
  type GroupEntry,
  parseGroup,
  parsePasswd,
  type PasswdEntry,
} from "../../rootless/passwd.ts";

export { type GroupEntry, parseGroup, parsePasswd, type PasswdEntry };

const DIGITS = /^[0-9]+$/;

async function readRootFile(root: string, path: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(await resolveInRoot(root, path), "utf8");
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw e;
  }
}

/** All passwd entries of a rootfs ([] when it has no /etc/passwd). */
export async function readPasswd(root: string): Promise<PasswdEntry[]> {
  const t = await readRootFile(root, "/etc/passwd");
  return t === undefined ? [] : parsePasswd(t);
}

/** All group entries of a rootfs ([] when it has no /etc/group). */
export async function readGroups(root: string): Promise<GroupEntry[]> {
  const t = await readRootFile(root, "/etc/group");
  return t === undefined ? [] : parseGroup(t);
}

/**
 * Look a user up by name (or numeric id) in <root>/etc/passwd. A numeric id not in the file
 * passes through with gid 0 (runc's default); an unknown name throws.
 */
export async function lookupUser(root: string, name: string): Promise<PasswdEntry> {
  const entries = await readPasswd(root);
  if (DIGITS.test(name)) {
    const uid = Number.parseInt(name, 10);
    const e = entries.find((x) => x.uid === uid);
    return e ? { ...e } : { name, uid, gid: 0, home: "/", shell: "" };
  }
  const e = entries.find((x) => x.name === name);
  if (!e) throw new Error(`unable to find user ${name}: no matching entries in passwd file`);
  return { ...e };
}

/** Look a group up by name (or numeric id) in <root>/etc/group; an unknown name throws. */
export async function lookupGroup(root: string, name: string): Promise<GroupEntry> {
  if (DIGITS.test(name)) {
    const gid = Number.parseInt(name, 10);
    const e = (await readGroups(root)).find((x) => x.gid === gid);
    return e ? { ...e } : { name, gid, members: [] };
  }
  const e = (await readGroups(root)).find((x) => x.name === name);
  if (!e) throw new Error(`unable to find group ${name}: no matching entries in group file`);
  return { ...e };
}

/** Supplementary group ids of a user name (groups listing it as a member). */
export async function supplementaryGroups(root: string, user: string): Promise<number[]> {
  return (await readGroups(root)).filter((g) => g.members.includes(user)).map((g) => g.gid);
}
