/**
 * The OCI image config and history types: shared by the frontend (which derives a stage's config),
 * the solver and the exporters (which write it), so none of them imports another's module.
 */
export type HistoryEntry = {
  created?: string;
  created_by?: string;
  comment?: string;
  empty_layer?: boolean;
};

/** OCI image config (the parts tsk writes; unknown fields of base images are kept). */
export type ImageConfig = {
  created?: string;
  architecture: string;
  os: string;
  variant?: string;
  config: Record<string, unknown>;
  rootfs: { type: "layers"; diff_ids: string[] };
  history?: HistoryEntry[];
  [k: string]: unknown;
};
