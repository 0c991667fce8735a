/**
 * Check 2: the CUDA, ROCm and Ascend code paths without a GPU. Each test builds a fake vendor
 * runtime (same C symbols, host memory inside, a call log) and points the loader at it through
 * KVMGR_CUDA_LIBRARY / KVMGR_HIP_LIBRARY / KVMGR_ACL_LIBRARY, then checks the calls, sizes and
 * copy directions — and runs the conformance suite on device memory and on pinned host memory.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { type DeviceBackendName, LIBRARY_ENV, createArena, listBackends, resolveBackend } from '../src/index.js';
import { arenaFactory, conformanceSuite, expectKvmgrError, pattern } from './conformance.js';
import { type FakeRuntime, buildFake, cloneLibrary, removeFake, takeLog } from './fake-runtimes.js';

const fakes: Record<DeviceBackendName, FakeRuntime> = {
  cuda: buildFake('CUDA'),
  rocm: buildFake('HIP'),
  ascend: buildFake('ACL'),
};
const saved = Object.fromEntries(Object.values(LIBRARY_ENV).map((k) => [k, process.env[k]]));
for (const kind of ['cuda', 'rocm', 'ascend'] as const) process.env[LIBRARY_ENV[kind]] = fakes[kind].library;
afterAll(() => {
  for (const f of Object.values(fakes)) removeFake(f);
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

/** Names of the calls each API makes for one step. */
const API = {
  cuda: { malloc: 'cudaMalloc', free: 'cudaFree', hostAlloc: 'cudaHostAlloc', hostFree: 'cudaFreeHost', memcpy: 'cudaMemcpyAsync', stream: 'cudaStreamCreate', event: ['cudaEventCreate', 'cudaEventRecord', 'cudaEventSynchronize', 'cudaEventDestroy'] },
  rocm: { malloc: 'hipMalloc', free: 'hipFree', hostAlloc: 'hipHostMalloc', hostFree: 'hipHostFree', memcpy: 'hipMemcpyAsync', stream: 'hipStreamCreate', event: ['hipEventCreate', 'hipEventRecord', 'hipEventSynchronize', 'hipEventDestroy'] },
  ascend: { malloc: 'aclrtMalloc', free: 'aclrtFree', hostAlloc: 'aclrtMallocHost', hostFree: 'aclrtFreeHost', memcpy: 'aclrtMemcpyAsync', stream: 'aclrtCreateStream', event: ['aclrtCreateEvent', 'aclrtRecordEvent', 'aclrtSynchronizeEvent', 'aclrtDestroyEvent'] },
} as const;

describe('backend discovery through the fake runtimes', () => {
  it('lists cuda, rocm and ascend as available with 2 devices each, and auto picks cuda', () => {
    const rows = listBackends();
    for (const kind of ['cuda', 'rocm', 'ascend'] as const) {
      expect(rows.find((r) => r.name === kind)).toEqual({ name: kind, compiled: true, available: true, reason: '', library: fakes[kind].library, deviceCount: 2 });
    }
    expect(resolveBackend('auto')).toBe('cuda');
  });

  it('auto falls through cuda → rocm → ascend → host as runtimes go missing, with reasons', () => {
    const cuda = process.env.KVMGR_CUDA_LIBRARY;
    const hip = process.env.KVMGR_HIP_LIBRARY;
    const acl = process.env.KVMGR_ACL_LIBRARY;
    try {
      process.env.KVMGR_CUDA_LIBRARY = '/nonexistent/libcudart.so';
      expect(resolveBackend('auto')).toBe('rocm');
      const row = listBackends().find((r) => r.name === 'cuda');
      expect(row?.available).toBe(false);
      expect(row?.reason).toContain('/nonexistent/libcudart.so');
      process.env.KVMGR_HIP_LIBRARY = '/nonexistent/libamdhip64.so';
      expect(resolveBackend('auto')).toBe('ascend');
      process.env.KVMGR_ACL_LIBRARY = '/nonexistent/libascendcl.so';
      expect(resolveBackend('auto')).toBe('host');
      expect(() => resolveBackend('cuda')).toThrow(/not available/);
    } finally {
      process.env.KVMGR_CUDA_LIBRARY = cuda;
      process.env.KVMGR_HIP_LIBRARY = hip;
      process.env.KVMGR_ACL_LIBRARY = acl;
    }
  });

  it('reports a runtime with no device, and a library that lacks symbols, as unavailable', async () => {
    const saved = process.env.KVMGR_CUDA_LIBRARY;
    try {
      process.env.KVMGR_FAKE_DEVICES = '0';
      process.env.KVMGR_CUDA_LIBRARY = cloneLibrary(fakes.cuda, 'libcudart-nodevice.so');
      const row = listBackends().find((r) => r.name === 'cuda');
      expect(row).toMatchObject({ available: false, deviceCount: 0 });
      expect(row?.reason).toMatch(/no cuda device/);
      await expectKvmgrError(() => createArena({ backend: 'cuda', numBlocks: 1, bytesPerBlock: 64 }), 'KVMGR_UNAVAILABLE');
      delete process.env.KVMGR_FAKE_DEVICES;
      // the HIP fake has none of the cuda* symbols
      process.env.KVMGR_CUDA_LIBRARY = fakes.rocm.library;
      expect(listBackends().find((r) => r.name === 'cuda')?.reason).toMatch(/lacks cudaGetDeviceCount/);
    } finally {
      delete process.env.KVMGR_FAKE_DEVICES;
      process.env.KVMGR_CUDA_LIBRARY = saved;
    }
  });
});

for (const kind of ['cuda', 'rocm', 'ascend'] as const) {
  const api = API[kind];
  const fake = fakes[kind];

  describe(`${kind} function table (fake ${fake.library.split('/').pop()})`, () => {
    it('allocates device memory and pinned host memory, and frees both on close', () => {
      takeLog(fake);
      const dev = createArena({ backend: kind, numBlocks: 8, bytesPerBlock: 4096, device: 1 });
      expect(dev).toMatchObject({ backend: kind, location: 'device', device: 1, tier: 'gpu', locked: false });
      const host = createArena({ backend: kind, numBlocks: 4, bytesPerBlock: 4096, location: 'host' });
      expect(host).toMatchObject({ backend: kind, location: 'host', device: 0, tier: 'cpu', locked: true });
      dev.close();
      host.close();
      const calls = takeLog(fake).filter((c) => !c.fn.endsWith('GetDeviceCount') && c.fn !== 'aclInit');
      expect(calls).toEqual([
        { fn: api.malloc, args: { bytes: String(8 * 4096), device: '1' } },
        { fn: api.hostAlloc, args: { bytes: String(4 * 4096), device: '0' } },
        { fn: api.free, args: { device: '1' } },
        // freeing pinned host memory needs no device selection
        { fn: api.hostFree, args: expect.any(Object) },
      ]);
    });

    it('copies with the right kinds and sizes: H2D, D2H, D2D, H2D from a host-backend arena; one event per batch', async () => {
      const dev = createArena({ backend: kind, numBlocks: 8, bytesPerBlock: 1024 });
      const dev2 = createArena({ backend: kind, numBlocks: 8, bytesPerBlock: 1024 });
      const pinned = createArena({ backend: kind, numBlocks: 8, bytesPerBlock: 1024, location: 'host' });
      const plain = createArena({ backend: 'host', numBlocks: 8, bytesPerBlock: 1024 });
      for (let b = 0; b < 8; b++) pinned.writeBlock(b, pattern(1024, b));
      takeLog(fake);
      // offload/reload shapes: a run of 3 (one call of 3 KiB) and a single block
      await pinned.copyBlocksTo(dev, { src: [0, 1, 2, 6], dst: [4, 5, 6, 0] });
      await dev.copyBlocksTo(pinned, { src: [4, 5], dst: [7, 3] });
      await dev.copyBlocksTo(dev2, { src: [0], dst: [2] });
      await plain.copyBlocksTo(dev2, { src: [1, 2], dst: [6, 7] });
      dev2.copyBlocksToSync(plain, { src: [2], dst: [0] });
      // Ascend: pageable host memory (the host-backend arena) takes the synchronous aclrtMemcpy
      const pageable = kind === 'ascend' ? 'aclrtMemcpy' : api.memcpy;
      const memcpys = takeLog(fake)
        .filter((c) => c.fn === api.memcpy || c.fn === pageable)
        .map((c) => `${c.fn} ${c.args.kind} ${c.args.bytes} dev${c.args.device}`);
      expect(memcpys).toEqual([
        `${api.memcpy} H2D 3072 dev0`,
        `${api.memcpy} H2D 1024 dev0`,
        `${api.memcpy} D2H 1024 dev0`,
        `${api.memcpy} D2H 1024 dev0`,
        `${api.memcpy} D2D 1024 dev0`,
        `${pageable} H2D 2048 dev0`,
        `${pageable} D2H 1024 dev0`,
      ]);
      // bytes really moved: pinned 6 → dev 0 → dev2 2 → plain 0
      expect(Buffer.from(plain.readBlock(0)).equals(Buffer.from(pattern(1024, 6)))).toBe(true);
      expect(Buffer.from(pinned.readBlock(7)).equals(Buffer.from(pattern(1024, 0)))).toBe(true);
      // one stream per device for the process; each batch records and waits on one event
      await dev.copyBlocksTo(dev2, { src: [1, 3], dst: [1, 3] });
      const calls = takeLog(fake).map((c) => c.fn);
      expect(calls).toEqual([api.memcpy, api.memcpy, ...api.event]);
      for (const a of [dev, dev2, pinned, plain]) a.close();
    });

    it('synchronous block read/write of device memory goes H2D/D2H with the exact byte range', () => {
      const dev = createArena({ backend: kind, numBlocks: 4, bytesPerBlock: 512, device: 1 });
      takeLog(fake);
      dev.writeBlock(3, pattern(100, 1), 200);
      const got = dev.readBlock(3, new Uint8Array(100), 200);
      expect(Buffer.from(got).equals(Buffer.from(pattern(100, 1)))).toBe(true);
      const pageable = kind === 'ascend' ? 'aclrtMemcpy' : api.memcpy;
      const memcpys = takeLog(fake)
        .filter((c) => c.fn === api.memcpy || c.fn === pageable)
        .map((c) => `${c.fn} ${c.args.kind} ${c.args.bytes} dev${c.args.device}`);
      expect(memcpys).toEqual([`${pageable} H2D 100 dev1`, `${pageable} D2H 100 dev1`]);
      dev.close();
    });

    it('turns runtime failures into KvmgrError (rejected promise, thrown) and keeps the process alive', async () => {
      const dev = createArena({ backend: kind, numBlocks: 4, bytesPerBlock: 256 });
      const host = createArena({ backend: kind, numBlocks: 4, bytesPerBlock: 256, location: 'host' });
      process.env.KVMGR_FAKE_FAIL = api.memcpy;
      try {
        await expectKvmgrError(() => host.copyBlocksTo(dev, { src: [0], dst: [0] }), 'KVMGR_NATIVE');
        if (kind === 'ascend') process.env.KVMGR_FAKE_FAIL = 'aclrtMemcpy';
        await expectKvmgrError(() => dev.readBlock(0), 'KVMGR_NATIVE');
        process.env.KVMGR_FAKE_FAIL = api.malloc;
        await expectKvmgrError(() => createArena({ backend: kind, numBlocks: 4, bytesPerBlock: 256 }), 'KVMGR_OUT_OF_MEMORY');
      } finally {
        delete process.env.KVMGR_FAKE_FAIL;
      }
      await expectKvmgrError(() => createArena({ backend: kind, numBlocks: 4, bytesPerBlock: 256, device: 7 }), 'KVMGR_INVALID_ARGUMENT');
      // still usable afterwards
      await host.copyBlocksTo(dev, { src: [1], dst: [1] });
      dev.close();
      host.close();
    });

    if (kind === 'ascend') {
      it('passes the destination capacity to aclrtMemcpyAsync (checked by the fake)', async () => {
        // The fake rejects any call whose destMax is below the count; a full conformance run
        // below exercises every copy shape through it.
        const dev = createArena({ backend: kind, numBlocks: 2, bytesPerBlock: 64 });
        dev.writeBlock(1, pattern(64, 3));
        expect(Buffer.from(dev.readBlock(1)).equals(Buffer.from(pattern(64, 3)))).toBe(true);
        dev.close();
      });
    }
  });

  conformanceSuite(`${kind} device memory (fake runtime)`, arenaFactory({ backend: kind }), {
    hostViews: false,
    peer: arenaFactory({ backend: kind, location: 'host' }),
  });
  conformanceSuite(`${kind} pinned host memory (fake runtime)`, arenaFactory({ backend: kind, location: 'host' }), {
    hostViews: true,
    peer: arenaFactory({ backend: 'host' }),
  });
}

describe('cross-runtime copies', () => {
  it('stages cuda → rocm device copies through host memory', async () => {
    const a = createArena({ backend: 'cuda', numBlocks: 4, bytesPerBlock: 256 });
    const b = createArena({ backend: 'rocm', numBlocks: 4, bytesPerBlock: 256 });
    a.writeBlock(2, pattern(256, 42));
    takeLog(fakes.cuda);
    takeLog(fakes.rocm);
    await a.copyBlocksTo(b, { src: [2], dst: [3] });
    expect(Buffer.from(b.readBlock(3)).equals(Buffer.from(pattern(256, 42)))).toBe(true);
    expect(takeLog(fakes.cuda).filter((c) => c.fn === 'cudaMemcpyAsync').map((c) => c.args.kind)).toEqual(['D2H']);
    expect(takeLog(fakes.rocm).filter((c) => c.fn === 'hipMemcpyAsync').map((c) => c.args.kind)).toEqual(['H2D', 'D2H']);
    a.close();
    b.close();
  });
});
