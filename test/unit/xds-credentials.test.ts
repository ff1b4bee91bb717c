// xDS credentials (src/node-agent/xds/xds-credentials.ts): the grpc-js CA provider follows the
// trust bundle (current roots at once, rotations pushed, nothing before the first roots,
// unsubscribed when the last channel lets go), and the bearer token is read fresh each time.
import { describe, expect, it } from 'vitest';
import { isAmeshError } from '../../src/errors/amesh-error.js';
import { bearerTokenMetadata, RootSourceCertificateProvider, type RootSource } from '../../src/node-agent/xds/xds-credentials.js';

function fakeRoots(initial: string[]): RootSource & { set(roots: string[]): void; subscribers: number } {
  let roots = initial;
  const listeners = new Set<(r: string[]) => void>();
  return {
    roots: () => roots,
    onChange: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    set(next) {
      roots = next;
      for (const l of listeners) l(next);
    },
    get subscribers() {
      return listeners.size;
    },
  };
}

describe('RootSourceCertificateProvider', () => {
  it('hands out the current roots, then every rotation, and lets go of the source', () => {
    const source = fakeRoots(['ROOT-A']);
    const provider = new RootSourceCertificateProvider(source);
    const seen: string[] = [];
    const listener = (u: { caCertificate: Buffer } | null): void => void seen.push(u?.caCertificate.toString() ?? 'null');
    provider.addCaCertificateListener(listener);
    expect(seen).toEqual(['ROOT-A']);
    source.set(['ROOT-A', 'ROOT-B']);
    expect(seen).toEqual(['ROOT-A', 'ROOT-A\nROOT-B']);
    provider.removeCaCertificateListener(listener);
    expect(source.subscribers).toBe(0);
    source.set(['ROOT-C']);
    expect(seen).toHaveLength(2);
  });

  it('says nothing until there are roots (grpc-js then waits before connecting)', () => {
    const source = fakeRoots([]);
    const provider = new RootSourceCertificateProvider(source);
    const seen: unknown[] = [];
    provider.addCaCertificateListener((u) => seen.push(u));
    expect(seen).toEqual([]);
    source.set([]);
    expect(seen).toEqual([]);
    source.set(['ROOT-A']);
    expect(seen).toHaveLength(1);
  });
});

describe('bearerTokenMetadata', () => {
  it('reads the token each time, trimmed', async () => {
    let token = 'token-1\n';
    const read = async (): Promise<string> => token;
    expect((await bearerTokenMetadata('/t', read)).get('authorization')).toEqual(['Bearer token-1']);
    token = 'token-2';
    expect((await bearerTokenMetadata('/t', read)).get('authorization')).toEqual(['Bearer token-2']);
  });

  it.each([
    ['an unreadable file', async (): Promise<string> => Promise.reject(Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' })), 'cannot read the xDS token /t'],
    ['an empty file', async (): Promise<string> => '  \n', 'the xDS token /t is empty'],
  ])('refuses %s with a coded error', async (_name, read, message) => {
    const err = await bearerTokenMetadata('/t', read).catch((e: unknown) => e);
    expect(isAmeshError(err, 'AMESH_CA_CREDENTIALS_UNREADABLE')).toBe(true);
    expect((err as Error).message).toContain(message);
  });
});
