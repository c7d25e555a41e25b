/**
 * The text of proto/ops.proto, the one source of the LLB schema: imported as text, which Deno
 * runs and Bun embeds in the compiled binary (no schema file is needed at run time).
 */
import text from "./ops.proto" with { type: "text" };

export const OPS_PROTO: string = text;
