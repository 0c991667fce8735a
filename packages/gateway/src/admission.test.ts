import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AdmissionQueue, AdmissionRejected, type AdmissionTicket } from './admission.js';

const t = (over: Partial<AdmissionTicket> = {}): AdmissionTicket => ({ sloClass: 'standard', priority: 0, deadlineMs: Number.POSITIVE_INFINITY, ...over });

describe('AdmissionQueue', () => {
  it('admits at once when it fits, defers when not, rejects when the queue is full', async () => {
    let free = 10;
    const q = new AdmissionQueue<number>(1, 60_000);
    const place = (need: number) => () => {
      if (free < need) return undefined;
      free -= need;
      return need;
    };
    await expect(q.admit(t(), place(6))).resolves.toEqual({ value: 6, deferred: false });
    const deferred = q.admit(t(), place(6));
    expect(q.depth).toBe(1);
    const err = await q.admit(t(), place(1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdmissionRejected);
    expect((err as AdmissionRejected).reason).toBe('queue_full');
    expect((err as AdmissionRejected).code).toBe('KVMGR_UNAVAILABLE');
    free += 6;
    q.release();
    await expect(deferred).resolves.toEqual({ value: 6, deferred: true });
    expect(q.stats).toEqual({ admitted: 2, deferred: 1, rejected: 1 });
  });

  it('a request behind waiting ones waits even if it would fit (no overtaking at the door)', async () => {
    let free = 0;
    const q = new AdmissionQueue<string>(8, 60_000);
    const order: string[] = [];
    const place = (id: string, need: number) => () => {
      if (free < need) return undefined;
      free -= need;
      order.push(id);
      return id;
    };
    const a = q.admit(t(), place('big', 5));
    free = 1;
    const b = q.admit(t(), place('small', 1));
    expect(q.depth).toBe(2);
    q.release(); // head (big) does not fit: nothing moves
    expect(order).toEqual([]);
    free = 6;
    q.release();
    await Promise.all([a, b]);
    expect(order).toEqual(['big', 'small']);
  });

  it('orders by SLO class, then priority, then deadline, then arrival', async () => {
    let open = false;
    const q = new AdmissionQueue<string>(16, 60_000);
    const order: string[] = [];
    const place = (id: string) => () => {
      if (!open) return undefined;
      order.push(id);
      return id;
    };
    const ps = [
      q.admit(t({ sloClass: 'batch' }), place('batch')),
      q.admit(t({ priority: 1 }), place('std-p1')),
      q.admit(t({ deadlineMs: 500 }), place('std-d500')),
      q.admit(t({ deadlineMs: 100 }), place('std-d100')),
      q.admit(t(), place('std-1')),
      q.admit(t({ sloClass: 'critical' }), place('critical')),
      q.admit(t(), place('std-2')),
    ];
    open = true;
    q.release();
    await Promise.all(ps);
    expect(order).toEqual(['critical', 'std-p1', 'std-d100', 'std-d500', 'std-1', 'std-2', 'batch']);
  });

  it('a deferred request is rejected after maxWaitMs and leaves the queue', async () => {
    const q = new AdmissionQueue<number>(4, 20);
    const err = await q.admit(t(), () => undefined).catch((e: unknown) => e);
    expect((err as AdmissionRejected).reason).toBe('wait_timeout');
    expect(q.depth).toBe(0);
  });

  it('property: capacity is never over-committed, every request ends admitted or rejected, the queue stays bounded', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 0, max: 4 }),
        fc.array(fc.oneof(fc.record({ op: fc.constant('req' as const), need: fc.integer({ min: 1, max: 12 }), cls: fc.constantFrom('critical', 'standard', 'batch') }), fc.record({ op: fc.constant('finish' as const) })), { maxLength: 40 }),
        async (capacity, maxQueue, ops) => {
          let free = capacity;
          const running: number[] = [];
          const q = new AdmissionQueue<number>(maxQueue, 60_000);
          const settled: Promise<unknown>[] = [];
          let outcomes = 0;
          for (const o of ops) {
            if (o.op === 'req') {
              const place = () => {
                if (free < o.need) return undefined;
                free -= o.need;
                running.push(o.need);
                return o.need;
              };
              settled.push(q.admit(t({ sloClass: o.cls }), place).then(() => outcomes++, () => outcomes++));
            } else if (running.length > 0) {
              free += running.shift() as number;
              q.release();
            }
            expect(free).toBeGreaterThanOrEqual(0);
            expect(q.depth).toBeLessThanOrEqual(maxQueue);
            await Promise.resolve();
          }
          while (running.length > 0) {
            free += running.shift() as number;
            q.release();
          }
          q.close();
          await Promise.all(settled);
          expect(outcomes).toBe(ops.filter((o) => o.op === 'req').length);
          expect(free).toBeLessThanOrEqual(capacity);
        },
      ),
      { numRuns: 200 },
    );
  });
});
