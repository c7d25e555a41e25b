/** The tsk version, printed by `tsk version`. */
export const VERSION = "0.1.0";
