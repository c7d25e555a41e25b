/** Semaphore: bounded holders, FIFO hand-over, idempotent release. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Semaphore } from "./semaphore.ts";
import { within } from "./testutil.ts";

test("Semaphore: at most n holders, FIFO hand-over, idempotent release", async () => {
  const sem = new Semaphore(2);
  const r1 = await sem.acquire();
  const r2 = await sem.acquire();
  const order: number[] = [];
  const w3 = sem.acquire().then((r) => (order.push(3), r));
  const w4 = sem.acquire().then((r) => (order.push(4), r));
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(order, []);
  r1();
  r1(); // a second release of the same slot frees nothing
  const r3 = await w3;
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(order, [3]);
  r2();
  const r4 = await w4;
  assert.deepEqual(order, [3, 4]);
  r3();
  r4();
  // both slots free again
  const a = await within(sem.acquire(), 1000, "slot 1");
  const b = await within(sem.acquire(), 1000, "slot 2");
  a();
  b();
  // a limit below 1 still admits one
  const one = new Semaphore(0);
  const x = await within(one.acquire(), 1000, "zero-sized semaphore");
  let second = false;
  const y = one.acquire().then((r) => ((second = true), r));
  await new Promise((r) => setTimeout(r, 5));
  assert.equal(second, false);
  x();
  (await y)();
});
