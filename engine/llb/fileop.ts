/**
 * File ops (client/llb `FileOp` / `FileAction`): chains of mkdir / mkfile / rm / copy / symlink
 * actions applied to a state in one vertex. Non-final actions get output -1 (SkipOutput), actions
 * without a base get input -1 (Empty), an action's input refers to the previous action's result as
 * `len(inputs) + index`, timestamps default to -1 and copy mode to -1 — exactly as client/llb.
 */
import type {
  ChownOpt,
  FileAction as PbFileAction,
  FileActionCopy,
  Input,
  Op,
  UserOpt,
} from "../../proto/ops.ts";
import { Empty, SkipOutput } from "../../proto/ops.ts";
import { Caps } from "./caps.ts";
import {
  cachedMarshal,
  Constraints,
  marshalConstraints,
  type MarshalContext,
  type MarshalledOp,
  marshalledOp,
  type OpNode,
  type OpOptions,
  Output,
  posixClean,
  posixPathJoin,
  sameInput,
  State,
} from "./state.ts";

/** A user or group: by name (resolved in the base state's /etc/passwd) or numeric id. */
export type UserSpec = { name: string } | { uid: number };
export type ChownSpec = { user?: UserSpec; group?: UserSpec };

function parseUID(s: string): number | undefined {
  if (s === "root") return 0;
  if (!/^[+-]?\d+$/.test(s)) return undefined;
  const n = Number(s);
  return n >= -2147483648 && n <= 2147483647 ? n : undefined;
}

/** client/llb WithUser: `"user[:group]"`, numeric parts become ids, `root` is 0. */
export function chown(spec: string): ChownSpec {
  const i = spec.indexOf(":");
  const parts = i < 0 ? [spec] : [spec.slice(0, i), spec.slice(i + 1)];
  const conv = (v: string): UserSpec => {
    const id = parseUID(v);
    return id === undefined ? { name: v } : { uid: id };
  };
  const out: ChownSpec = { user: conv(parts[0]) };
  if (parts.length > 1) out.group = conv(parts[1]);
  return out;
}

/** client/llb WithUIDGID. */
export function chownIDs(uid: number, gid: number): ChownSpec {
  return { user: { uid }, group: { uid: gid } };
}

export type MkdirOptions = { makeParents?: boolean; chown?: ChownSpec; createdTime?: Date };
export type MkfileOptions = { chown?: ChownSpec; createdTime?: Date };
export type RmOptions = { allowNotFound?: boolean; allowWildcard?: boolean };
export type SymlinkOptions = { chown?: ChownSpec; createdTime?: Date };
export type CopyOptions = {
  /** Numeric mode (written as-is), or a chmod string like `u+x` (`modeStr`). Default: keep (-1). */
  mode?: number | string;
  followSymlinks?: boolean;
  copyDirContentsOnly?: boolean;
  includePatterns?: string[];
  excludePatterns?: string[];
  requiredPaths?: string[];
  attemptUnpack?: boolean;
  createDestPath?: boolean;
  allowWildcard?: boolean;
  allowEmptyWildcard?: boolean;
  chown?: ChownSpec;
  createdTime?: Date;
  alwaysReplaceExistingDestPaths?: boolean;
};

type SubAction =
  | { kind: "mkdir"; path: string; mode: number; opts: MkdirOptions }
  | { kind: "mkfile"; path: string; mode: number; data: Uint8Array; opts: MkfileOptions }
  | { kind: "rm"; path: string; opts: RmOptions }
  | {
    kind: "copy";
    state?: State;
    fas?: FileActionWithState;
    src: string;
    dest: string;
    opts: CopyOptions;
  }
  | { kind: "symlink"; oldpath: string; newpath: string; opts: SymlinkOptions };

/** What `copy` reads from: a state, or the result of another action chain bound to a state. */
export type CopyInput = State | FileActionWithState;

/** One action in a chain; each method appends an action and returns the new chain head. */
export class FileAction {
  readonly action: SubAction;
  readonly prev?: FileAction;
  readonly state?: State;
  constructor(action: SubAction, prev?: FileAction, state?: State) {
    this.action = action;
    this.prev = prev;
    this.state = state;
  }
  mkdir(path: string, mode: number, opts: MkdirOptions = {}): FileAction {
    return new FileAction(mkdir(path, mode, opts).action, this);
  }
  mkfile(
    path: string,
    mode: number,
    data: Uint8Array | string,
    opts: MkfileOptions = {},
  ): FileAction {
    return new FileAction(mkfile(path, mode, data, opts).action, this);
  }
  rm(path: string, opts: RmOptions = {}): FileAction {
    return new FileAction(rm(path, opts).action, this);
  }
  copy(input: CopyInput, src: string, dest: string, opts: CopyOptions = {}): FileAction {
    return new FileAction(copy(input, src, dest, opts).action, this);
  }
  symlink(oldpath: string, newpath: string, opts: SymlinkOptions = {}): FileAction {
    return new FileAction(symlink(oldpath, newpath, opts).action, this);
  }
  /** A copy of the chain with every action bound to `s` (client/llb bind). */
  bind(s: State): FileAction {
    return new FileAction(this.action, this.prev?.bind(s), s);
  }
  /** Use this chain's result, applied to `s`, as a copy source. */
  withState(s: State): FileActionWithState {
    return new FileActionWithState(this.bind(s));
  }
}

export class FileActionWithState {
  readonly action: FileAction;
  constructor(action: FileAction) {
    this.action = action;
  }
}

export function mkdir(path: string, mode: number, opts: MkdirOptions = {}): FileAction {
  return new FileAction({ kind: "mkdir", path, mode, opts });
}
export function mkfile(
  path: string,
  mode: number,
  data: Uint8Array | string,
  opts: MkfileOptions = {},
): FileAction {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  return new FileAction({ kind: "mkfile", path, mode, data: bytes, opts });
}
export function rm(path: string, opts: RmOptions = {}): FileAction {
  return new FileAction({ kind: "rm", path, opts });
}
export function copy(
  input: CopyInput,
  src: string,
  dest: string,
  opts: CopyOptions = {},
): FileAction {
  if (input instanceof State) {
    return new FileAction({ kind: "copy", state: input, src, dest, opts });
  }
  if (input instanceof FileActionWithState) {
    return new FileAction({ kind: "copy", fas: input, src, dest, opts });
  }
  throw new TypeError("copy: input must be a State or FileAction.withState(...)");
}
/** A symlink at `newpath` pointing to `oldpath`. */
export function symlink(oldpath: string, newpath: string, opts: SymlinkOptions = {}): FileAction {
  return new FileAction({ kind: "symlink", oldpath, newpath, opts });
}

/** UnixNano of a time, -1 when unset (client/llb marshalTime). */
function marshalTime(t: Date | undefined): number {
  if (!t) return -1;
  return Number(BigInt(t.getTime()) * 1000000n);
}

function marshalUser(u: UserSpec | undefined, base: number): UserOpt | undefined {
  if (!u) return undefined;
  if ("name" in u && u.name !== "") return { byName: { name: u.name, input: base } };
  return { byID: "uid" in u ? u.uid >>> 0 : 0 };
}

function marshalChown(c: ChownSpec | undefined, base: number): ChownOpt | undefined {
  if (!c) return undefined;
  const out: ChownOpt = {};
  const user = marshalUser(c.user, base);
  const group = marshalUser(c.group, base);
  if (user) out.user = user;
  if (group) out.group = group;
  return out;
}

/** client/llb normalizePath. */
function normalizePath(parent: string, p: string, keepSlash: boolean): string {
  const orig = p;
  p = posixClean(p);
  if (!p.startsWith("/")) p = posixPathJoin("/", parent, p);
  if (keepSlash) {
    if (orig.endsWith("/") && !p.endsWith("/")) p += "/";
    else if (orig.endsWith("/.")) {
      if (p !== "/") p += "/";
      p += ".";
    }
  }
  return p;
}

function sourcePath(a: Extract<SubAction, { kind: "copy" }>): string {
  const p = posixClean(a.src);
  let dir = "/";
  if (!p.startsWith("/")) {
    if (a.state) dir = a.state.getDir();
    else if (a.fas) dir = a.fas.action.state?.getDir() ?? "";
  }
  return posixPathJoin(dir, p);
}

function toProtoAction(a: SubAction, parent: string, base: number): PbFileAction {
  switch (a.kind) {
    case "mkdir":
      return {
        mkdir: {
          path: normalizePath(parent, a.path, false),
          mode: a.mode & 0o777,
          makeParents: !!a.opts.makeParents,
          owner: marshalChown(a.opts.chown, base),
          timestamp: marshalTime(a.opts.createdTime),
        },
      };
    case "mkfile":
      return {
        mkfile: {
          path: normalizePath(parent, a.path, false),
          mode: a.mode & 0o777,
          data: a.data,
          owner: marshalChown(a.opts.chown, base),
          timestamp: marshalTime(a.opts.createdTime),
        },
      };
    case "rm":
      return {
        rm: {
          path: normalizePath(parent, a.path, false),
          allowNotFound: !!a.opts.allowNotFound,
          allowWildcard: !!a.opts.allowWildcard,
        },
      };
    case "symlink":
      return {
        symlink: {
          oldpath: a.oldpath,
          newpath: a.newpath,
          owner: marshalChown(a.opts.chown, base),
          timestamp: marshalTime(a.opts.createdTime),
        },
      };
    case "copy": {
      const o = a.opts;
      const c: FileActionCopy = {
        src: sourcePath(a),
        dest: normalizePath(parent, a.dest, true),
        owner: marshalChown(o.chown, base),
        include_patterns: o.includePatterns,
        exclude_patterns: o.excludePatterns,
        required_paths: o.requiredPaths,
        allowWildcard: !!o.allowWildcard,
        allowEmptyWildcard: !!o.allowEmptyWildcard,
        followSymlink: !!o.followSymlinks,
        dirCopyContents: !!o.copyDirContentsOnly,
        attemptUnpackDockerCompatibility: !!o.attemptUnpack,
        createDestPath: !!o.createDestPath,
        timestamp: marshalTime(o.createdTime),
        alwaysReplaceExistingDestPaths: !!o.alwaysReplaceExistingDestPaths,
      };
      if (o.mode === undefined) c.mode = -1;
      else if (typeof o.mode === "string") c.modeStr = o.mode;
      else c.mode = o.mode | 0;
      return { copy: c };
    }
  }
}

type ActionState = {
  base: number;
  input: number;
  inputRelative?: ActionState;
  input2: number;
  input2Relative?: ActionState;
  target: number;
  fa: FileAction;
};

/** The file-op vertex. */
export class FileNode implements OpNode {
  readonly action: FileAction;
  readonly constraints: Constraints;
  readonly output: Output;
  constructor(s: State, action: FileAction, c: Constraints) {
    this.action = action.bind(s);
    this.constraints = c;
    this.output = new Output(this, { index: () => 0 });
  }

  inputs(): Output[] {
    const seen = new Set<Output>();
    const out: Output[] = [];
    const add = (o: Output | undefined) => {
      if (o && !seen.has(o)) {
        seen.add(o);
        out.push(o);
      }
    };
    const walk = (fa: FileAction | undefined) => {
      if (!fa) return;
      add(fa.state?.output);
      if (fa.action.kind === "copy") {
        if (fa.action.state) add(fa.action.state.output);
        else if (fa.action.fas) walk(fa.action.fas.action);
      }
      walk(fa.prev);
    };
    walk(this.action);
    return out;
  }

  marshal(ctx: MarshalContext): MarshalledOp {
    return cachedMarshal(ctx, this, () => this.doMarshal(ctx));
  }

  private doMarshal(ctx: MarshalContext): MarshalledOp {
    const c = this.constraints;
    // client/llb only records file.base: its per-action cap loop runs before the actions are
    // collected, so copy/symlink caps never reach the metadata. Kept for identical output.
    c.addCap(Caps.FileBase);
    if (!c.platform) c.platform = this.action.state?.getPlatform();
    const { op, metadata } = marshalConstraints(ctx, c);
    delete op.platform; // file ops are not platform specific

    const inputs: Input[] = [];
    const actions: ActionState[] = [];
    const visited = new Map<FileAction, ActionState>();
    const addInput = (o: Output): number => {
      const inp = o.toInput(ctx);
      const i = inputs.findIndex((x) => sameInput(x, inp));
      if (i >= 0) return i;
      inputs.push(inp);
      return inputs.length - 1;
    };
    const add = (fa: FileAction): ActionState => {
      const hit = visited.get(fa);
      if (hit) return hit;
      const prevState = fa.prev ? add(fa.prev) : undefined;
      const st: ActionState = { base: Empty, input: Empty, input2: Empty, target: 0, fa };
      const src = fa.state?.output;
      if (src) st.base = addInput(src);
      if (!fa.prev) st.input = st.base;
      else st.inputRelative = prevState;
      if (fa.action.kind === "copy") {
        if (fa.action.state) {
          const out = fa.action.state.output;
          if (out) st.input2 = addInput(out);
        } else if (fa.action.fas) {
          st.input2Relative = add(fa.action.fas.action);
        } else throw new Error("invalid empty source for copy");
      }
      st.target = actions.length;
      visited.set(fa, st);
      actions.push(st);
      return st;
    };
    add(this.action);

    const pbActions: PbFileAction[] = actions.map((st, i) => {
      const parent = st.fa.state?.getDir() ?? "";
      const rel = (idx: number, r?: ActionState) => (r ? inputs.length + r.target : idx);
      return {
        input: rel(st.input, st.inputRelative),
        secondaryInput: rel(st.input2, st.input2Relative),
        output: i + 1 === actions.length ? 0 : SkipOutput,
        ...toProtoAction(st.fa.action, parent, st.base),
      };
    });
    const full: Op = { ...(inputs.length ? { inputs } : {}), ...op, file: { actions: pbActions } };
    return marshalledOp(full, metadata, c);
  }
}

/** Creates the file op for State.file and returns its output. */
export function fileOp(s: State, action: FileAction, opts: OpOptions = {}): Output {
  return new FileNode(s, action, Constraints.from(opts)).output;
}
