/**
 * `--label KEY=VALUE` and `--annotation [TYPE[PLATFORM]:]KEY=VALUE`, as buildx has them: labels
 * go into every image config's `Labels`; annotations go to the manifests unless a type
 * (`manifest`, `manifest-descriptor`, `index`, `index-descriptor`) says where.
 */
import type { Annotation, AnnotationTarget } from "../exporters/index.ts";
import type { ImageConfig } from "../engine/image/config.ts";
import { UsageError } from "./output_flag.ts";

export function parseLabels(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of list) {
    const i = l.indexOf("=");
    if (i <= 0) throw new UsageError(`invalid --label ${JSON.stringify(l)}: expected KEY=VALUE`);
    out[l.slice(0, i)] = l.slice(i + 1);
  }
  return out;
}

/** The config with `labels` added to (and overriding) its own Labels. */
export function withLabels(config: ImageConfig, labels: Record<string, string>): ImageConfig {
  if (!Object.keys(labels).length) return config;
  const old = (config.config?.Labels as Record<string, string> | null | undefined) ?? {};
  return { ...config, config: { ...config.config, Labels: { ...old, ...labels } } };
}

const TYPED = /^(manifest|manifest-descriptor|index|index-descriptor)(?:\[([^\]]+)\])?:(.*)$/s;

export function parseAnnotationFlags(list: string[]): Annotation[] {
  return list.map((a) => {
    const m = TYPED.exec(a);
    const target = (m?.[1] ?? "manifest") as AnnotationTarget;
    const platform = m?.[2];
    const kv = m ? m[3] : a;
    const i = kv.indexOf("=");
    if (i <= 0) {
      throw new UsageError(
        `invalid --annotation ${JSON.stringify(a)}: expected [TYPE[PLATFORM]:]KEY=VALUE`,
      );
    }
    if (platform && (target === "index" || target === "index-descriptor")) {
      throw new UsageError(
        `--annotation ${a}: an index annotation cannot be limited to a platform`,
      );
    }
    return {
      target,
      ...(platform ? { platform } : {}),
      key: kv.slice(0, i),
      value: kv.slice(i + 1),
    };
  });
}
