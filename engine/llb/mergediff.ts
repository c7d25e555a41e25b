/**
 * Merge and diff ops (client/llb `Merge` / `Diff`): layer-wise union of states, and the changes
 * between two states. Neither is platform specific. Scratch inputs are folded away as client/llb
 * does (merge of one non-scratch input is that input, diff from scratch is the upper state).
 */
import type { Input, Op } from "../../proto/ops.ts";
import { Empty } from "../../proto/ops.ts";
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
  scratch,
  State,
} from "./state.ts";

export class MergeNode implements OpNode {
  readonly ins: Output[];
  readonly constraints: Constraints;
  readonly output: Output;
  constructor(inputs: Output[], c: Constraints) {
    if (inputs.length < 2) throw new Error("merge must have at least 2 inputs");
    this.ins = inputs;
    this.constraints = c;
    this.output = new Output(this);
  }
  inputs(): Output[] {
    return [...this.ins];
  }
  marshal(ctx: MarshalContext): MarshalledOp {
    return cachedMarshal(ctx, this, () => {
      const { op, metadata } = marshalConstraints(ctx, this.constraints);
      delete op.platform;
      const inputs: Input[] = this.ins.map((o) => o.toInput(ctx));
      const full: Op = { inputs, ...op, merge: { inputs: inputs.map((_, i) => ({ input: i })) } };
      return marshalledOp(full, metadata, this.constraints);
    });
  }
}

/** Merges states bottom-to-top (later inputs win). */
export function merge(states: State[], opts: OpOptions = {}): State {
  const outs = states.map((s) => s.output).filter((o): o is Output => o !== undefined);
  if (outs.length === 0) return scratch();
  if (outs.length === 1) return states.find((s) => s.output !== undefined)!;
  const c = Constraints.from(opts);
  c.addCap(Caps.MergeOp);
  return State.fromOutput(new MergeNode(outs, c).output);
}

export class DiffNode implements OpNode {
  readonly lower: Output | undefined;
  readonly upper: Output | undefined;
  readonly constraints: Constraints;
  readonly output: Output;
  constructor(lower: Output | undefined, upper: Output | undefined, c: Constraints) {
    c.addCap(Caps.DiffOp);
    this.lower = lower;
    this.upper = upper;
    this.constraints = c;
    this.output = new Output(this);
  }
  inputs(): Output[] {
    return [this.lower, this.upper].filter((o): o is Output => o !== undefined);
  }
  marshal(ctx: MarshalContext): MarshalledOp {
    return cachedMarshal(ctx, this, () => {
      const { op, metadata } = marshalConstraints(ctx, this.constraints);
      delete op.platform;
      const inputs: Input[] = [];
      const lower = { input: this.lower ? inputs.push(this.lower.toInput(ctx)) - 1 : Empty };
      const upper = { input: this.upper ? inputs.push(this.upper.toInput(ctx)) - 1 : Empty };
      const full: Op = { ...(inputs.length ? { inputs } : {}), ...op, diff: { lower, upper } };
      return marshalledOp(full, metadata, this.constraints);
    });
  }
}

/** The changes that turn `lower` into `upper` (as a state usable in merge). */
export function diff(lower: State, upper: State, opts: OpOptions = {}): State {
  if (!lower.output) return upper.output ? upper : scratch();
  return lower.withOutput(new DiffNode(lower.output, upper.output, Constraints.from(opts)).output);
}
