/**
 * Go's fmt verbs as BuildKit's Dockerfile frontend uses them in image history (`created_by`):
 * `%v` of a []string (`[a b]`; `%q` is gostr.ts's goQuoteList), time.Duration's String (`1m30s`, `1.5s`, `100ms`) and the `%+v` of a HealthcheckConfig.
 */

export { goQuote, goQuoteList } from "../../gostr.ts";

/** `fmt.Sprintf("%v", []string{...})`. */
export function goList(list: readonly string[]): string {
  return `[${list.join(" ")}]`;
}

/** Digits of `v` (an integer count of 10^-prec units) with trailing fractional zeros dropped. */
function frac(v: bigint, prec: number): string {
  const unit = 10n ** BigInt(prec);
  const whole = v / unit;
  let f = (v % unit).toString().padStart(prec, "0").replace(/0+$/, "");
  if (f) f = "." + f;
  return `${whole}${f}`;
}

/** time.Duration(ns).String(). */
export function goDuration(ns: number | bigint): string {
  let u = BigInt(ns);
  const neg = u < 0n;
  if (neg) u = -u;
  let s: string;
  if (u === 0n) return "0s";
  if (u < 1000n) s = `${u}ns`;
  else if (u < 1000000n) s = frac(u, 3) + "µs";
  else if (u < 1000000000n) s = frac(u, 6) + "ms";
  else {
    const secs = u % 60000000000n;
    const mins = u / 60000000000n;
    s = frac(secs, 9) + "s";
    if (mins > 0n) {
      s = `${mins % 60n}m` + s;
      if (mins >= 60n) s = `${mins / 60n}h` + s;
    }
  }
  return neg ? "-" + s : s;
}

export type GoHealthcheck = {
  test: readonly string[];
  interval?: number;
  timeout?: number;
  startPeriod?: number;
  startInterval?: number;
  retries?: number;
};

/** `fmt.Sprintf("HEALTHCHECK %+v", dockerspec.HealthcheckConfig{...})`. */
export function goHealthcheck(h: GoHealthcheck): string {
  return `{Test:${goList(h.test)} Interval:${goDuration(h.interval ?? 0)} Timeout:${
    goDuration(h.timeout ?? 0)
  } StartPeriod:${goDuration(h.startPeriod ?? 0)} StartInterval:${
    goDuration(h.startInterval ?? 0)
  } Retries:${h.retries ?? 0}}`;
}
