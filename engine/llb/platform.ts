/**
 * LLB platforms (`pb.Platform` shape: `OS`, `Architecture`, `Variant`, ...) and containerd-style
 * normalisation (`platforms.Normalize`), plus the host default BuildKit uses when none is given.
 */
import type { Platform } from "../../proto/ops.ts";

export type { Platform };

/** containerd `platforms.Normalize`: canonical OS / architecture / variant spelling. */
export function normalizePlatform(p: Platform): Platform {
  const os = (p.OS ?? "").toLowerCase();
  let arch = (p.Architecture ?? "").toLowerCase();
  let variant = p.Variant ?? "";
  switch (arch) {
    case "i386":
    case "i486":
    case "i586":
    case "i686":
      arch = "386";
      variant = "";
      break;
    case "x86_64":
    case "x86-64":
    case "amd64":
      arch = "amd64";
      if (variant === "v1") variant = "";
      break;
    case "aarch64":
    case "arm64":
      arch = "arm64";
      if (variant === "8" || variant === "v8" || variant === "v8.0") variant = "";
      break;
    case "armhf":
      arch = "arm";
      variant = "v7";
      break;
    case "armel":
      arch = "arm";
      variant = "v6";
      break;
    case "arm":
      switch (variant) {
        case "":
        case "7":
          variant = "v7";
          break;
        case "5":
        case "6":
        case "8":
          variant = "v" + variant;
          break;
      }
      break;
  }
  const out: Platform = { OS: os, Architecture: arch };
  if (variant) out.Variant = variant;
  if (p.OSVersion) out.OSVersion = p.OSVersion;
  if (p.OSFeatures) out.OSFeatures = [...p.OSFeatures];
  return out;
}

const NODE_ARCH: Record<string, string> = {
  x64: "amd64",
  arm64: "arm64",
  arm: "arm",
  ia32: "386",
  ppc64: "ppc64le",
  s390x: "s390x",
  riscv64: "riscv64",
  loong64: "loong64",
  mips64el: "mips64le",
};

/** The normalised host platform (always OS "linux": tsk builds Linux images). */
export function defaultPlatform(): Platform {
  const arch = typeof process !== "undefined" ? NODE_ARCH[process.arch] ?? process.arch : "amd64";
  return normalizePlatform({ OS: "linux", Architecture: arch });
}

/** `os/arch[/variant]`, e.g. `linux/arm/v7`. */
export function formatPlatform(p: Platform): string {
  return [p.OS ?? "", p.Architecture ?? "", ...(p.Variant ? [p.Variant] : [])].join("/");
}

/** Parses `os/arch[/variant]` (containerd syntax, normalised). */
export function parsePlatform(s: string): Platform {
  const parts = s.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((x) => x === "")) {
    throw new Error(`invalid platform ${JSON.stringify(s)}: expected os/arch[/variant]`);
  }
  return normalizePlatform({
    OS: parts[0],
    Architecture: parts[1],
    ...(parts[2] ? { Variant: parts[2] } : {}),
  });
}
