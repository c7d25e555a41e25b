/**
 * Mount targets resolved in the composed view: the rootfs plus the mounts already placed on it,
 * in the order they will be mounted. The kernel (and runc) resolve a later mount's target through
 * the earlier mounts, so a symlink inside a bind-mounted stage (`/h/x -> /`) must be resolved
 * inside that view too, never on the host. Paths under a bind mount map to its source directory,
 * paths under a tmpfs (or /proc, /sys) do not exist until the sandbox creates them.
 */
import { followLinks } from "./rootpath.ts";

/** A mount already placed, as the composed view sees it. */
export type ViewLayer = {
  /** Canonical container path (no symlink in it, as resolved in the composed view). */
  target: string;
  /** bind: `source` backs it; tmpfs: empty at mount time; virtual: proc/sysfs (no new paths). */
  kind: "bind" | "tmpfs" | "virtual";
  source?: string;
  readonly?: boolean;
};

export type ViewPath = {
  /** Canonical container path (every symlink followed inside the composed view). */
  container: string;
  /** Whether it exists in the view. */
  exists: boolean;
  /** The mount it lies in (undefined: the rootfs itself). */
  owner?: ViewLayer;
  /** Host path backing it (in the rootfs or the owner's source); undefined under tmpfs/virtual. */
  host?: string;
};

/** The mount a canonical container path lies in: the last placed layer whose target covers it. */
export function ownerOf(layers: ViewLayer[], container: string): ViewLayer | undefined {
  let best: ViewLayer | undefined;
  for (const l of layers) {
    const covers = l.target === "/" || container === l.target ||
      container.startsWith(l.target + "/");
    if (!covers) continue;
    // Deeper targets win; at equal depth the later mount shadows the earlier one.
    if (!best || l.target.length >= best.target.length) best = l;
  }
  return best;
}

/** Host path of canonical container path `c`, or undefined when it is inside a tmpfs/virtual. */
function hostOf(rootfs: string, layers: ViewLayer[], c: string): string | undefined {
  const owner = ownerOf(layers, c);
  if (!owner) return c === "/" ? rootfs : rootfs + c;
  if (owner.kind !== "bind" || !owner.source) return undefined;
  return c === owner.target ? owner.source : owner.source + c.slice(owner.target.length);
}

/**
 * Resolve container path `p` in the composed view of `rootfs` and `layers`: symlinks (absolute or
 * relative, in the rootfs or in a mounted source) are followed inside the view, `..` stops at /.
 * Missing components (and all after them) are kept literally.
 */
export function resolveInView(rootfs: string, layers: ViewLayer[], p: string): ViewPath {
  const root = rootfs.replace(/\/+$/, "") || "/";
  const { parts, missing } = followLinks(p, (cp) => {
    const host = hostOf(root, layers, cp);
    if (host !== undefined) return { host };
    // Inside a tmpfs/proc/sysfs: only its mount point exists when the next mount is made.
    return { exists: ownerOf(layers, cp)?.target === cp };
  }, {
    followLast: true,
    loopMessage: `too many levels of symbolic links resolving mount target ${p}`,
  });
  const container = "/" + parts.join("/");
  const owner = ownerOf(layers, container);
  return { container, exists: !missing, owner, host: hostOf(root, layers, container) };
}
