/**
 * Stage-graph checks shared by the converter and the linter (`--call=check`), written as loops so
 * a Dockerfile with 100,000 chained stages cannot overflow the stack.
 *
 * A `FROM` that names a stage defined later is an error; when following the `FROM` names from
 * there leads back to the same stage it is a cycle (`FROM a AS b` / `FROM b AS a`), reported with
 * BuildKit's words: `circular dependency detected on stage: NAME`.
 */

/**
 * When stage `i`'s FROM chain (base names resolved through `byName`, lower-cased stage names)
 * comes back to stage `i`, the name of that stage; else undefined.
 */
export function stageCycle(
  baseNames: readonly string[],
  byName: ReadonlyMap<string, number>,
  i: number,
  names?: readonly (string | undefined)[],
): string | undefined {
  const seen = new Set<number>();
  let cur = i;
  for (;;) {
    const next = byName.get(baseNames[cur].toLowerCase());
    if (next === undefined || seen.has(next)) return undefined;
    if (next === i) return names?.[i] ?? nameOf(byName, i);
    seen.add(next);
    cur = next;
  }
}

function nameOf(byName: ReadonlyMap<string, number>, i: number): string {
  for (const [n, j] of byName) if (j === i) return n;
  return `stage-${i}`;
}

/** Every node reachable from `start` (start included), without recursion. */
export function reachableFrom<T>(start: T, next: (n: T) => Iterable<T>): Set<T> {
  const seen = new Set<T>([start]);
  const stack = [start];
  for (let n = stack.pop(); n !== undefined; n = stack.pop()) {
    for (const m of next(n)) {
      if (!seen.has(m)) {
        seen.add(m);
        stack.push(m);
      }
    }
  }
  return seen;
}
