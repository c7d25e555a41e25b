/**
 * An error tsk expects and can explain (a store that cannot be created, a full disk, a layer
 * that is not what its digest says): the top-level handler (cli/fatal.ts) prints it as
 * `ERROR: <what> (<path or digest>)` with exit status 1 and no stack trace. Anything else that
 * reaches the top is a bug: same one line, plus a hint to rerun with `--debug`, and exit status 70.
 */
export class TskError extends Error {
  /** The file or directory the error is about. */
  path?: string;
  /** The blob (or layer) the error is about. */
  digest?: string;
  /** errno code of the underlying error (ENOSPC, EACCES ...), when there is one. */
  code?: string;

  constructor(
    message: string,
    o: { path?: string; digest?: string; code?: string; cause?: unknown } = {},
  ) {
    super(message, o.cause !== undefined ? { cause: o.cause } : undefined);
    this.name = "TskError";
    if (o.path !== undefined) this.path = o.path;
    if (o.digest !== undefined) this.digest = o.digest;
    if (o.code !== undefined) this.code = o.code;
  }
}

const ERRNO_TEXT: Record<string, string> = {
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOENT: "no such file or directory",
  ENOTDIR: "not a directory",
  EISDIR: "is a directory",
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  EROFS: "read-only file system",
  EEXIST: "file exists",
  ELOOP: "too many levels of symbolic links",
  EMFILE: "too many open files",
  ENAMETOOLONG: "file name too long",
  EIO: "input/output error",
};

/** `no such file or directory` for an errno error (its own text without Node's prefix otherwise). */
export function errnoText(err: unknown): string {
  const e = err as { code?: string; message?: string };
  if (e?.code && ERRNO_TEXT[e.code]) return ERRNO_TEXT[e.code];
  const m = /^[A-Z]+: ([^,]+)(?:,|$)/.exec(e?.message ?? "");
  return m ? m[1] : (e?.message ?? String(err));
}
