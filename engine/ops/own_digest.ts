/**
 * The base cache key of an op with inputs: its digest with the inputs' digests left out (their
 * positions stay). The solver adds each input's own cache key, so how an input was written in
 * the LLB (e.g. an image source's `image.resolvemode`, which `--pull` sets) does not change the
 * keys of the steps on it, as BuildKit's CacheMap digests an op without its inputs.
 */
import { encodeOp, type Op, opDigest } from "../../proto/ops.ts";

export function ownDigest(op: Op): string {
  const inputs = op.inputs?.map((i) => ({ ...i, digest: "" }));
  return opDigest(encodeOp(inputs ? { ...op, inputs } : op));
}
