/**
 * Test helper: a tiny rootfs made of the host's static busybox (applet symlinks in /bin), an
 * /etc/passwd with root and app (1000), /etc/group (app also in wheel), /tmp and /home/app.
 * Deliberately without /proc, /dev, /sys, /etc/hosts or /etc/resolv.conf: the sandbox must create
 * those mount points and remove them afterwards.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, copyFileSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { findBinary } from "../binaries.ts";

export function makeBusyboxRootfs(dir: string): string {
  const busybox = findBinary("busybox");
  if (!busybox) throw new Error("busybox (busybox-static) is needed for the sandbox tests");
  mkdirSync(`${dir}/bin`, { recursive: true });
  chmodSync(dir, 0o755);
  copyFileSync(busybox, `${dir}/bin/busybox`);
  chmodSync(`${dir}/bin/busybox`, 0o755);
  const list = spawnSync(busybox, ["--list"], { encoding: "utf8" }).stdout.split("\n");
  for (const applet of list) {
    if (applet === "" || applet === "busybox") continue;
    symlinkSync("busybox", `${dir}/bin/${applet}`);
  }
  mkdirSync(`${dir}/etc`);
  writeFileSync(
    `${dir}/etc/passwd`,
    "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
  );
  writeFileSync(`${dir}/etc/group`, "root:x:0:\nwheel:x:10:app\napp:x:1000:\n");
  mkdirSync(`${dir}/tmp`, { mode: 0o1777 });
  chmodSync(`${dir}/tmp`, 0o1777);
  mkdirSync(`${dir}/root`, { mode: 0o700 });
  mkdirSync(`${dir}/home/app`, { recursive: true });
  try {
    chownSync(`${dir}/home/app`, 1000, 1000);
  } catch {
    // a single-id user namespace cannot own files as 1000
  }
  return dir;
}
