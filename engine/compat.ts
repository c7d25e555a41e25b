/**
 * What tsk is compatible with: the Dockerfile syntax its built-in frontend implements, the
 * BuildKit release whose LLB wire format and frontend rules it follows, and the OCI specs of
 * the images it writes and the runtime configs it hands to runc. Printed by `tsk version`.
 */
export const DOCKERFILE_SYNTAX = "1.26";
export const BUILDKIT_COMPAT = "v0.32";
export const OCI_IMAGE_SPEC = "v1.1.0";
export const OCI_RUNTIME_SPEC = "1.0.2";
