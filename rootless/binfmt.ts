/**
 * QEMU user-mode emulation through binfmt_misc: which foreign architectures this kernel can run,
 * and the error to show when a RUN needs one that is missing. Handlers registered with the `F`
 * (fix-binary) flag keep their interpreter open from registration time, so they work in user
 * namespaces and chroots (where the interpreter's path does not exist); tsk needs nothing else.
 * Registering handlers needs root in the initial user namespace: rootless tsk cannot do it.
 */
import { readdirSync, readFileSync } from "node:fs";

export const BINFMT_DIR = "/proc/sys/fs/binfmt_misc";

export type Emulator = {
  /** Handler name, e.g. `qemu-aarch64`. */
  name: string;
  /** OCI architecture it runs, e.g. `arm64` (undefined for handlers that are not QEMU's). */
  architecture?: string;
  interpreter: string;
  flags: string;
  enabled: boolean;
};

/** QEMU's binary names → OCI architectures (what containerd/BuildKit's binfmt tables use). */
const QEMU_ARCH: Record<string, string> = {
  aarch64: "arm64",
  arm: "arm",
  i386: "386",
  x86_64: "amd64",
  ppc64le: "ppc64le",
  s390x: "s390x",
  riscv64: "riscv64",
  mips64el: "mips64le",
  mips64: "mips64",
  loongarch64: "loong64",
};

/** Architectures a CPU of `host` runs without emulation (amd64 also runs 386, arm64 runs arm). */
export function nativeArchitectures(host: string): string[] {
  if (host === "amd64") return ["amd64", "386"];
  if (host === "arm64") return ["arm64", "arm"];
  return [host];
}

/** Parses one `/proc/sys/fs/binfmt_misc/<name>` file. */
export function parseHandler(name: string, text: string): Emulator {
  const lines = text.split("\n");
  const field = (k: string) =>
    lines.find((l) => l.startsWith(k + " ") || l.startsWith(k + ":"))?.slice(k.length + 1).trim() ??
      "";
  const m = /^qemu-(.+)$/.exec(name);
  return {
    name,
    architecture: m ? QEMU_ARCH[m[1]] : undefined,
    interpreter: field("interpreter"),
    flags: field("flags"),
    enabled: lines[0]?.trim() === "enabled",
  };
}

/** The registered binfmt_misc handlers (empty when binfmt_misc is not mounted or readable). */
export function listEmulators(dir = BINFMT_DIR): Emulator[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n !== "register" && n !== "status").sort();
  } catch {
    return [];
  }
  const out: Emulator[] = [];
  for (const n of names) {
    try {
      out.push(parseHandler(n, readFileSync(`${dir}/${n}`, "utf8")));
    } catch {
      // a handler removed while listing
    }
  }
  return out;
}

/** The enabled QEMU handler with the F flag that runs `architecture`, if any. */
export function emulatorFor(architecture: string, emulators: Emulator[]): Emulator | undefined {
  return emulators.find((e) =>
    e.enabled && e.architecture === architecture && e.flags.includes("F")
  );
}

/** Why a RUN for `platform` cannot run here and how to fix it, or undefined when it can. */
export function emulationProblem(
  platform: { os?: string; architecture: string; variant?: string },
  host: string,
  emulators: Emulator[] = listEmulators(),
): string | undefined {
  if (nativeArchitectures(host).includes(platform.architecture)) return undefined;
  if (emulatorFor(platform.architecture, emulators)) return undefined;
  const p = [platform.os ?? "linux", platform.architecture, platform.variant].filter(Boolean)
    .join("/");
  const qemu = Object.entries(QEMU_ARCH).find(([, a]) => a === platform.architecture)?.[0] ??
    platform.architecture;
  const unfixed = emulators.find((e) => e.enabled && e.architecture === platform.architecture);
  const why = unfixed
    ? `the binfmt_misc handler ${unfixed.name} is registered without the F (fix-binary) flag, so it cannot run inside the build's namespaces`
    : `no QEMU emulator for ${platform.architecture} is registered in binfmt_misc (${BINFMT_DIR})`;
  return `cannot run a ${p} command on this ${host} host: ${why}. ` +
    `Register the handlers as root on the host: install Debian's qemu-user-static and ` +
    `binfmt-support (apt-get install qemu-user-static binfmt-support), or run ` +
    `"update-binfmts --enable qemu-${qemu}" (mount binfmt_misc first: ` +
    `mount -t binfmt_misc binfmt_misc ${BINFMT_DIR}). Rootless tsk cannot register them itself`;
}

/** Lines for `tsk debug env`: each emulator, its architecture and whether builds can use it. */
export function describeEmulators(emulators: Emulator[] = listEmulators()): string[] {
  const qemu = emulators.filter((e) => e.architecture);
  if (!qemu.length) {
    return [
      `emulators: none registered in ${BINFMT_DIR} (foreign-platform RUN needs qemu-user-static + binfmt-support)`,
    ];
  }
  return [
    "emulators:",
    ...qemu.map((e) => {
      const usable = e.enabled && e.flags.includes("F");
      return `  ${e.architecture!.padEnd(9)} ${e.name.padEnd(18)} ${e.interpreter} flags=${
        e.flags || "-"
      } ${usable ? "usable" : e.enabled ? "unusable: no F flag" : "disabled"}`;
    }),
  ];
}
