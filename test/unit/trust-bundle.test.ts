import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { generateCa, type CaMaterial } from '../../src/identity/pki.js';
import { parseTrustBundle, TrustBundle } from '../../src/identity/trust-bundle.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { createTestCa, workload } from '../helpers/pki.js';

let oldRoot: CaMaterial;
let newRoot: CaMaterial;
let leafPem: string;
beforeAll(async () => {
  [oldRoot, newRoot] = await Promise.all([generateCa({ trustDomain: 'cluster.local', validityDays: 1 }), generateCa({ trustDomain: 'cluster.local', validityDays: 1 })]);
  leafPem = (await (await createTestCa()).issue(workload('default', 'a'))).chainPem[0] as string;
});

/** An in-memory "file" the bundle polls. */
function fakeFile(initial: string | Error): { set(content: string | Error): void; read: (path: string) => Promise<string>; reads: number } {
  let content = initial;
  const f = {
    reads: 0,
    set(c: string | Error) {
      content = c;
    },
    read: async () => {
      f.reads++;
      if (content instanceof Error) throw content;
      return content;
    },
  };
  return f;
}

const open: TrustBundle[] = [];
async function bundle(file: ReturnType<typeof fakeFile>, pollMs = 1000): Promise<TrustBundle> {
  const b = await TrustBundle.open({ file: '/var/run/secrets/istio/root-cert.pem', pollMs, logger: silentLogger, readFile: file.read });
  open.push(b);
  return b;
}
afterEach(() => {
  for (const b of open.splice(0)) b.close();
  vi.useRealTimers();
});

describe('parseTrustBundle', () => {
  it('accepts one or more CA certificates and explains everything else', () => {
    expect(parseTrustBundle(oldRoot.certPem + newRoot.certPem)).toEqual({ roots: [oldRoot.certPem, newRoot.certPem] });
    expect(parseTrustBundle('')).toEqual({ problem: 'the file is empty' });
    expect(parseTrustBundle('hello')).toEqual({ problem: 'the file holds no PEM certificate' });
    expect(parseTrustBundle('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')).toMatchObject({ problem: expect.stringContaining('certificate 1 does not parse') });
    expect(parseTrustBundle(oldRoot.certPem + leafPem)).toMatchObject({ problem: expect.stringContaining('certificate 2 (empty subject) is not a CA') });
  });
});

describe('TrustBundle', () => {
  it('reads the roots at open and reports changes to listeners', async () => {
    const file = fakeFile(oldRoot.certPem);
    const b = await bundle(file);
    expect(b.roots()).toEqual([oldRoot.certPem]);
    const seen: string[][] = [];
    b.onChange((roots) => seen.push(roots));
    // Root rotation, step 1: both roots.
    file.set(oldRoot.certPem + newRoot.certPem);
    expect(await b.check()).toBe(true);
    expect(b.roots()).toEqual([oldRoot.certPem, newRoot.certPem]);
    // Unchanged content: no event.
    expect(await b.check()).toBe(false);
    // Same certificates, different whitespace: no event either.
    file.set(`\n${oldRoot.certPem}\n\n${newRoot.certPem}`);
    expect(await b.check()).toBe(false);
    // Step 2: the new root only.
    file.set(newRoot.certPem);
    expect(await b.check()).toBe(true);
    expect(seen).toEqual([[oldRoot.certPem, newRoot.certPem], [newRoot.certPem]]);
    expect(b.status()).toMatchObject({ roots: 1, changedAt: expect.any(String) });
  });

  it('keeps the last good roots over an empty, garbled or unreadable update', async () => {
    const file = fakeFile(oldRoot.certPem);
    const b = await bundle(file);
    const listener = vi.fn();
    b.onChange(listener);
    for (const bad of ['', 'garbage', `${oldRoot.certPem}${leafPem}`, Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' })]) {
      file.set(bad);
      expect(await b.check()).toBe(false);
      expect(b.roots()).toEqual([oldRoot.certPem]);
      expect(b.status().problem).toBeDefined();
    }
    expect(listener).not.toHaveBeenCalled();
    file.set(newRoot.certPem);
    expect(await b.check()).toBe(true);
    expect(b.status().problem).toBeUndefined();
    expect(listener).toHaveBeenCalledWith([newRoot.certPem]);
  });

  it('starts empty when the file is missing and picks the roots up once it appears', async () => {
    const file = fakeFile(new Error('ENOENT'));
    const b = await bundle(file);
    expect(b.roots()).toEqual([]);
    expect(b.status().problem).toContain('ENOENT');
    file.set(oldRoot.certPem);
    expect(await b.check()).toBe(true);
    expect(b.roots()).toEqual([oldRoot.certPem]);
  });

  it('polls every pollMs, one read at a time, and stops on close', async () => {
    vi.useFakeTimers();
    const file = fakeFile(oldRoot.certPem);
    const b = await bundle(file, 1000);
    const listener = vi.fn();
    b.onChange(listener);
    expect(file.reads).toBe(1);
    await vi.advanceTimersByTimeAsync(999);
    expect(file.reads).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(file.reads).toBe(2);
    file.set(newRoot.certPem);
    await vi.advanceTimersByTimeAsync(1000);
    expect(listener).toHaveBeenCalledWith([newRoot.certPem]);
    // Concurrent checks share one read.
    const reads = file.reads;
    await Promise.all([b.check(), b.check(), b.check()]);
    expect(file.reads).toBe(reads + 1);
    b.close();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(file.reads).toBe(reads + 1);
  });

  it('isolates a throwing listener and supports unsubscribe', async () => {
    const file = fakeFile(oldRoot.certPem);
    const b = await bundle(file);
    const good = vi.fn();
    const gone = vi.fn();
    b.onChange(() => {
      throw new Error('boom');
    });
    b.onChange(good);
    const off = b.onChange(gone);
    off();
    file.set(newRoot.certPem);
    expect(await b.check()).toBe(true);
    expect(good).toHaveBeenCalledTimes(1);
    expect(gone).not.toHaveBeenCalled();
  });
});
