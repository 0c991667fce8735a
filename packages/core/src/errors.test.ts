import { describe, expect, it, vi } from 'vitest';
import { KvmgrError, describeValue, invalidArgument, isKvmgrError } from './errors.js';

describe('KvmgrError', () => {
  it('carries code, details and cause', () => {
    const cause = new Error('root');
    const e = new KvmgrError('KVMGR_OUT_OF_BLOCKS', 'need 4 blocks, 2 free', { cause, details: { free: 2, requested: 4 } });
    expect(e).toBeInstanceOf(Error);
    expect(e.code).toBe('KVMGR_OUT_OF_BLOCKS');
    expect(e.details).toEqual({ free: 2, requested: 4 });
    expect(e.cause).toBe(cause);
    expect(e.name).toBe('KvmgrError');
    expect(isKvmgrError(e)).toBe(true);
    expect(isKvmgrError(e, 'KVMGR_OUT_OF_BLOCKS')).toBe(true);
    expect(isKvmgrError(e, 'KVMGR_BAD_TRACE')).toBe(false);
  });

  it('isKvmgrError rejects look-alikes', () => {
    expect(isKvmgrError(new Error('x'))).toBe(false);
    expect(isKvmgrError({ code: 'KVMGR_INVALID_ARGUMENT', message: 'x' })).toBe(false);
    expect(isKvmgrError(null)).toBe(false);
    expect(isKvmgrError('KVMGR_INVALID_ARGUMENT')).toBe(false);
  });

  it('isKvmgrError recognises errors from a second copy of the package', async () => {
    vi.resetModules();
    const copyPath = './errors.ts?copy=2';
    const second = (await import(/* @vite-ignore */ copyPath)) as typeof import('./errors.js');
    expect(second.KvmgrError).not.toBe(KvmgrError);
    const foreign = new second.KvmgrError('KVMGR_PROTOCOL', 'bad frame');
    expect(foreign instanceof KvmgrError).toBe(false);
    expect(isKvmgrError(foreign, 'KVMGR_PROTOCOL')).toBe(true);
    expect(second.isKvmgrError(new KvmgrError('KVMGR_PROTOCOL', 'x'))).toBe(true);
  });

  it('invalidArgument names the field, the value and the expectation', () => {
    const e = invalidArgument('pool.numBlocks', -3, 'a positive integer');
    expect(e.code).toBe('KVMGR_INVALID_ARGUMENT');
    expect(e.message).toBe('pool.numBlocks must be a positive integer, got -3');
    expect(e.details).toMatchObject({ field: 'pool.numBlocks', value: -3 });
    expect(describeValue('a')).toBe('"a"');
    expect(describeValue(5n)).toBe('5n');
    expect(describeValue({ a: 'x'.repeat(100) })).toHaveLength(80);
  });
});
