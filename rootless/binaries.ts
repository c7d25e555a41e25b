/**
 * Locating the host helper binaries the rootless code runs (unshare, mount, runc, ...).
 * Looks in $PATH and then in the usual sbin/bin directories, because an unprivileged user's PATH
 * often lacks /usr/sbin (where runc, pivot_root or ip live).
 */
import { accessSync, constants, statSync } from "node:fs";

const FALLBACK_DIRS = [
  "/usr/local/sbin",
  "/usr/local/bin",
  "/usr/sbin",
  "/usr/bin",
  "/sbin",
  "/bin",
];
const cache = new Map<string, string | null>();

/** Absolute path of an executable named `name`, or null when it is not installed. */
export function findBinary(name: string): string | null {
  const hit = cache.get(name);
  if (hit !== undefined) return hit;
  let found: string | null = null;
  if (name.includes("/")) {
    found = isExecutable(name) ? name : null;
  } else {
    const dirs = [
      ...(process.env.PATH ?? "").split(":").filter((d) => d.startsWith("/")),
      ...FALLBACK_DIRS,
    ];
    for (const dir of dirs) {
      const p = `${dir}/${name}`;
      if (isExecutable(p)) {
        found = p;
        break;
      }
    }
  }
  cache.set(name, found);
  return found;
}

/** Like findBinary but throws a helpful error when the binary is missing. */
export function requireBinary(name: string, pkg: string): string {
  const p = findBinary(name);
  if (!p) throw new Error(`${name} not found in PATH: install ${pkg}`);
  return p;
}

function isExecutable(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
