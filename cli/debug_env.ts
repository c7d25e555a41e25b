/**
 * The emulation part of `tsk debug env` (cli/env.ts): it lists the QEMU emulators registered in
 * binfmt_misc (rootless/binfmt.ts) and which foreign platforms RUN can therefore use.
 */
import { defaultPlatform, formatPlatform } from "../engine/llb/platform.ts";
import { describeEmulators, listEmulators, nativeArchitectures } from "../rootless/binfmt.ts";

/** The emulator section of `tsk debug env`, as lines. */
export function emulatorLines(): string[] {
  const host = defaultPlatform();
  const emulators = listEmulators();
  const runnable = new Set(nativeArchitectures(host.Architecture!));
  for (const e of emulators) {
    if (e.architecture && e.enabled && e.flags.includes("F")) runnable.add(e.architecture);
  }
  return [
    `platform: ${formatPlatform(host)}`,
    `RUN platforms: ${[...runnable].map((a) => `linux/${a}`).join(", ")}`,
    ...describeEmulators(emulators),
  ];
}
