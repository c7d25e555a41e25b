/**
 * The text of every .proto file, by the name its `import` statements give it: imported as text,
 * which Deno runs and Bun embeds in the compiled binary (no schema file is needed at run time).
 */
import control from "./control.proto" with { type: "text" };
import gateway from "./gateway.proto" with { type: "text" };
import { OPS_PROTO } from "./ops_proto.ts";

export const PROTO_FILES: Readonly<Record<string, string>> = {
  "ops.proto": OPS_PROTO,
  "control.proto": control,
  "gateway.proto": gateway,
};
