/**
 * containerd's `platforms.Parse` for a platform written in a Dockerfile (`FROM --platform=…`):
 * one to three `/`-separated components (`linux`, `arm64`, `linux/arm/v7`), each checked against
 * containerd's patterns, with its error texts (BuildKit wraps them as
 * `failed to parse platform <expr>: <error>`). A lone OS takes the host architecture, a lone
 * architecture the OS linux.
 */
import { defaultPlatform, normalizePlatform, type Platform } from "./platform.ts";

const SPECIFIER_RE = /^[A-Za-z0-9_.-]+$/;
const OS_RE_SOURCE = "^([A-Za-z0-9_-]+)(?:\\(([A-Za-z0-9_.%-]*)((?:\\+[A-Za-z0-9_.%-]+)*)\\))?$";
const OS_RE = new RegExp(OS_RE_SOURCE);

const KNOWN_OS = new Set(
  "aix android darwin dragonfly freebsd hurd illumos ios js linux nacl netbsd openbsd plan9 solaris windows zos"
    .split(" "),
);
const KNOWN_ARCH = new Set(
  ("386 amd64 amd64p32 arm armbe arm64 arm64be ppc64 ppc64le loong64 mips mipsle mips64 " +
    "mips64le mips64p32 mips64p32le ppc riscv riscv64 s390 s390x sparc sparc64 wasm").split(" "),
);

/** Go's %q of a plain string. */
const q = (s: string) => JSON.stringify(s);

/** Parses a platform specifier as containerd does; throws its error text. */
export function parsePlatformSpecifier(spec: string): Platform {
  if (spec.includes("*")) {
    throw new Error(`${q(spec)}: wildcards not yet supported: invalid argument`);
  }
  const all = spec.split("/");
  const parts = all.length > 4 ? [...all.slice(0, 3), all.slice(3).join("/")] : all;
  let os = "";
  for (const [i, part] of parts.entries()) {
    if (i === 0) {
      const m = OS_RE.exec(part);
      if (!m) {
        throw new Error(
          `${q(part)} is an invalid OS component of ${q(spec)}: OSAndVersion specifier component ` +
            `must match ${q(OS_RE_SOURCE)}: invalid argument`,
        );
      }
      os = m[1].toLowerCase() === "macos" ? "darwin" : m[1].toLowerCase();
    } else if (!SPECIFIER_RE.test(part)) {
      throw new Error(
        `${q(part)} is an invalid component of ${q(spec)}: platform specifier component must ` +
          `match ${q(SPECIFIER_RE.source)}: invalid argument`,
      );
    }
  }
  switch (parts.length) {
    case 1: {
      if (KNOWN_OS.has(os)) return { ...defaultPlatform(), OS: os };
      const p = normalizePlatform({ OS: "linux", Architecture: parts[0] });
      if (KNOWN_ARCH.has(p.Architecture ?? "")) return p;
      throw new Error(`${q(spec)}: unknown operating system or architecture: invalid argument`);
    }
    case 2:
      return normalizePlatform({ OS: os, Architecture: parts[1] });
    case 3:
      return normalizePlatform({ OS: os, Architecture: parts[1], Variant: parts[2] });
  }
  throw new Error(`${q(spec)}: cannot parse platform specifier: invalid argument`);
}
