import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AdmissionAbandoned, AdmissionQueue, AdmissionRejected, type AdmissionTicket, leaveOnAbort } from './admission.js';
import { ServiceModel } from './service-model.js';

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
    expect(q.stats).toEqual({ admitted: 2, deferred: 1, rejected: 1, abandoned: 0 });
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
      q.admit(t({ deadlineMs: Date.now() + 50_000 }), place('std-d500')),
      q.admit(t({ deadlineMs: Date.now() + 10_000 }), place('std-d100')),
      q.admit(t(), place('std-1')),
      q.admit(t({ sloClass: 'critical' }), place('critical')),
      q.admit(t(), place('std-2')),
    ];
    open = true;
    q.release();
    await Promise.all(ps);
    expect(order).toEqual(['critical', 'std-p1', 'std-d100', 'std-d500', 'std-1', 'std-2', 'batch']);
  });

  it('a deferred request whose client goes away leaves at once, is never placed, and releases what waited behind it', async () => {
    let free = 3;
    const dequeued: string[] = [];
    const fairness = { counter: () => 0, enqueued: () => undefined, dequeued: (tenant: string) => void dequeued.push(tenant) };
    const q = new AdmissionQueue<string>(8, 60_000, { fairness });
    const placed: string[] = [];
    const place = (id: string, need: number) => () => {
      if (free < need) return undefined;
      free -= need;
      placed.push(id);
      return id;
    };
    const gone = new AbortController();
    const big = q.admit(t({ tenant: 'a' }), place('big', 5), leaveOnAbort(gone.signal)).catch((e: unknown) => e);
    const small = q.admit(t({ tenant: 'b' }), place('small', 2));
    q.release(); // the head does not fit: the small one waits behind it
    expect(placed).toEqual([]);
    gone.abort();
    const err = await big;
    expect(err).toBeInstanceOf(AdmissionAbandoned);
    expect((err as AdmissionAbandoned).details).toMatchObject({ reason: 'abandoned' });
    await expect(small).resolves.toEqual({ value: 'small', deferred: true });
    expect(placed).toEqual(['small']);
    expect(dequeued.sort()).toEqual(['a', 'b']);
    expect(q.depth).toBe(0);
    expect(q.stats).toEqual({ admitted: 1, deferred: 2, rejected: 0, abandoned: 1 });
    // a client gone before the request is deferred leaves at once; the ADMIT path never asks
    const early = new AbortController();
    early.abort();
    free = 0;
    let watched = 0;
    const watch = leaveOnAbort(early.signal);
    const counted = (leave: () => void) => {
      watched++;
      return watch(leave);
    };
    await expect(q.admit(t(), place('x', 1), counted)).rejects.toBeInstanceOf(AdmissionAbandoned);
    free = 1;
    await expect(q.admit(t(), place('y', 1), counted)).resolves.toEqual({ value: 'y', deferred: false });
    expect(watched).toBe(1);
    expect(q.depth).toBe(0);
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

  describe('deadlines (TTFT SLO)', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    /** A model that has seen one placement → first byte of 40 ms and a service time of 250 ms. */
    const seen = (): ServiceModel => {
      const m = new ServiceModel();
      m.observeTtft(40);
      m.observeService(250);
      return m;
    };

    it('refuses at the door a request whose queue ahead drains after its place-by time, with the drain time as Retry-After hint', async () => {
      // The clock stands still: on the wall clock a stall of 100 ms between the first admit and
      // the urgent one (a loaded machine) put the urgent deadline behind the first's, and one of
      // 400 ms expired the first before close().
      vi.useFakeTimers({ now: 1_000_000 });
      // 1,024 tokens in flight drained in 250 ms: 4.096 tokens/ms; TTFT bound 40 + 2 × 20 = 80 ms
      const q = new AdmissionQueue<number>(16, 60_000, { model: seen(), inFlightTokens: () => 1024 });
      const place = () => undefined;
      // nothing ahead: deferred, however short its budget (it is next when KV frees)
      const first = q.admit(t({ deadlineMs: Date.now() + 400, footprintTokens: 2048 }), place);
      expect(q.depth).toBe(1);
      // 2,048 tokens ahead → ~500 ms; 450 − 80 ms left to place it: refused at once
      const behind = await q.admit(t({ deadlineMs: Date.now() + 450, footprintTokens: 512 }), place).catch((e: unknown) => e);
      expect(behind).toBeInstanceOf(AdmissionRejected);
      expect((behind as AdmissionRejected).reason).toBe('deadline');
      expect((behind as AdmissionRejected).message).toMatch(/queued ahead of it 500 ms/);
      expect((behind as AdmissionRejected).retryAfterMs).toBeCloseTo(625, 5); // (2,048 + 512) / 4.096
      // 10 s to its deadline: deferred behind the first
      const patient = q.admit(t({ deadlineMs: Date.now() + 10_000, footprintTokens: 512 }), place);
      expect(q.depth).toBe(2);
      // an earlier deadline goes ahead of both: nothing ahead of it, deferred
      const urgent = q.admit(t({ deadlineMs: Date.now() + 300, footprintTokens: 512 }), place);
      expect(q.depth).toBe(3);
      expect(q.stats).toEqual({ admitted: 0, deferred: 3, rejected: 1, abandoned: 0 });
      q.close();
      for (const p of [first, patient, urgent]) await expect(p).rejects.toMatchObject({ reason: 'closed' });
    });

    it('without a service sample nothing is predicted: a request with time left is deferred, one past its deadline refused', async () => {
      const q = new AdmissionQueue<number>(16, 60_000, { inFlightTokens: () => 1024 });
      const pending = q.admit(t({ deadlineMs: Date.now() + 10_000, footprintTokens: 512 }), () => undefined);
      expect(q.depth).toBe(1);
      const late = await q.admit(t({ deadlineMs: Date.now() - 1 }), () => undefined).catch((e: unknown) => e);
      expect((late as AdmissionRejected).reason).toBe('deadline');
      q.close();
      await expect(pending).rejects.toMatchObject({ reason: 'closed' });
    });

    it('a request that can be placed now is admitted whatever its deadline', async () => {
      const q = new AdmissionQueue<number>(16, 60_000, { model: seen(), inFlightTokens: () => 1024 });
      await expect(q.admit(t({ deadlineMs: Date.now() - 1000 }), () => 7)).resolves.toEqual({ value: 7, deferred: false });
    });

    it('a deferred request with a TTFT SLO expires at its deadline (reason deadline), not after maxWaitMs', async () => {
      const q = new AdmissionQueue<number>(4, 3_600_000);
      const err = await q.admit(t({ deadlineMs: Date.now() + 20 }), () => undefined).catch((e: unknown) => e);
      expect((err as AdmissionRejected).reason).toBe('deadline');
      expect(q.depth).toBe(0);
      expect(q.stats).toEqual({ admitted: 0, deferred: 1, rejected: 1, abandoned: 0 });
    });

    it('release refuses a head whose place-by time has passed instead of placing it, and places the next', async () => {
      vi.useFakeTimers({ now: 1_000_000 });
      const q = new AdmissionQueue<string>(4, 60_000);
      let open = false;
      const placed: string[] = [];
      const place = (id: string) => () => {
        if (!open) return undefined;
        placed.push(id);
        return id;
      };
      const a = q.admit(t({ deadlineMs: 1_000_100 }), place('a')).catch((e: unknown) => e);
      const b = q.admit(t({ deadlineMs: 1_010_000 }), place('b'));
      vi.setSystemTime(1_000_200); // a's deadline passed; its timer has not run
      open = true;
      q.release();
      expect(placed).toEqual(['b']);
      expect(((await a) as AdmissionRejected).reason).toBe('deadline');
      await expect(b).resolves.toEqual({ value: 'b', deferred: true });
      expect(q.depth).toBe(0);
    });

    it('a standing queue serves the newest of the head group first (adaptive LIFO); a young queue the oldest', async () => {
      vi.useFakeTimers({ now: 1_000_000 });
      const q = new AdmissionQueue<string>(8, 60_000);
      let free = 0;
      const placed: string[] = [];
      const place = (id: string) => () => {
        if (free === 0) return undefined;
        free--;
        placed.push(id);
        return id;
      };
      const all = ['old', 'mid', 'new'].map((id, i) => {
        vi.setSystemTime(1_000_000 + i);
        return q.admit(t({ deadlineMs: 1_001_000 }), place(id));
      });
      vi.setSystemTime(1_000_100); // 100 of 1,000 ms used: FIFO
      free = 1;
      q.release();
      expect(placed).toEqual(['old']);
      vi.setSystemTime(1_000_600); // more than half used: LIFO
      free = 1;
      q.release();
      expect(placed).toEqual(['old', 'new']);
      // a more important class still goes first
      const crit = q.admit(t({ sloClass: 'critical', deadlineMs: 1_001_000 }), place('critical'));
      free = 2;
      q.release();
      expect(placed).toEqual(['old', 'new', 'critical', 'mid']);
      await Promise.all([...all, crit]);
    });

    it('property: with deadlines and fake time, every request ends placed before its deadline or refused, and nothing stays queued', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 1, max: 6 }),
          fc.array(
            fc.oneof(
              fc.record({ op: fc.constant('req' as const), budget: fc.integer({ min: 0, max: 500 }), cls: fc.constantFrom('critical', 'standard', 'batch') }),
              fc.record({ op: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 300 }) }),
              fc.record({ op: fc.constant('finish' as const) }),
            ),
            { maxLength: 40 },
          ),
          async (slots, ops) => {
            vi.useFakeTimers({ now: 5_000_000 });
            try {
              let free = slots;
              const running: number[] = [];
              const model = new ServiceModel();
              model.observeTtft(10);
              model.observeService(100);
              const q = new AdmissionQueue<number>(4, 60_000, { model, inFlightTokens: () => running.length });
              const ends: Promise<void>[] = [];
              const late: number[] = [];
              for (const o of ops) {
                if (o.op === 'req') {
                  const deadline = Date.now() + o.budget;
                  let atDoor = true;
                  const place = () => {
                    if (free === 0) return undefined;
                    // placed from the queue: must be before the deadline (at the door anything that fits goes)
                    if (!atDoor && Date.now() >= deadline) late.push(deadline);
                    free--;
                    running.push(deadline);
                    return deadline;
                  };
                  ends.push(
                    q.admit(t({ sloClass: o.cls, deadlineMs: deadline, footprintTokens: 1 }), place).then(
                      () => undefined,
                      (e: unknown) => {
                        expect(e).toBeInstanceOf(AdmissionRejected);
                      },
                    ),
                  );
                  atDoor = false;
                } else if (o.op === 'tick') await vi.advanceTimersByTimeAsync(o.ms);
                else if (running.length > 0) {
                  running.shift();
                  free++;
                  q.release();
                }
                expect(free).toBeGreaterThanOrEqual(0);
                expect(q.depth).toBeLessThanOrEqual(4);
              }
              await vi.advanceTimersByTimeAsync(1000);
              await Promise.all(ends);
              expect(late).toEqual([]);
              expect(q.depth).toBe(0);
              expect(free + running.length).toBe(slots);
            } finally {
              vi.useRealTimers();
            }
          },
        ),
        { numRuns: 100 },
      );
    });
  });
});

describe('ServiceModel', () => {
  it('follows RFC 6298: first sample sets mean and half of it as deviation; then gains 1/8 and 1/4; bound = mean + 2 × deviation', () => {
    const m = new ServiceModel();
    expect(m.ttftBoundMs()).toBe(0);
    m.observeTtft(100);
    expect(m.ttftBoundMs()).toBe(200); // 100 + 2 × 50
    m.observeTtft(100);
    expect(m.ttftBoundMs()).toBe(175); // dev 0.75 × 50 = 37.5
    m.observeTtft(180);
    // dev 0.75 × 37.5 + 0.25 × 80 = 48.125; mean 100 + 80 / 8 = 110
    expect(m.ttftBoundMs()).toBeCloseTo(110 + 2 * 48.125, 10);
    m.observeTtft(-1);
    m.observeTtft(Number.NaN);
    expect(m.ttftSamples).toBe(3);
  });

  it("drains by Little's law: tokens × service time / tokens in flight; unknown before a sample or with nothing in flight", () => {
    const m = new ServiceModel();
    expect(m.drainMs(512, 4096)).toBeUndefined();
    m.observeService(250);
    expect(m.drainMs(512, 4096)).toBe(31.25);
    expect(m.drainMs(512, 0)).toBeUndefined();
    m.observeService(330);
    expect(m.serviceMs()).toBe(260); // 250 + 80 / 8
  });
});
