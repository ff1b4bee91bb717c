import { describe, expect, it } from 'vitest';
import type { MutableHeaders } from '../../src/l7/filters/header-mutation.js';
import { stripHopByHop } from '../../src/l7/filters/hop-by-hop.js';
import { forwardedHeaders } from '../../src/l7/pipeline/forwarded-headers.js';

/** The reference: copy (no pseudo headers, no undefined), strip, drop `skip`. */
function reference(source: MutableHeaders, skip: readonly string[] = []): MutableHeaders {
  const out: MutableHeaders = {};
  for (const [k, v] of Object.entries(source)) if (!k.startsWith(':') && v !== undefined) out[k] = v;
  stripHopByHop(out);
  for (const name of skip) delete out[name];
  return out;
}

const CASES: MutableHeaders[] = [
  {},
  { host: 'a', accept: '*/*' },
  { host: 'a', connection: 'keep-alive', 'keep-alive': 'timeout=5', 'user-agent': 'x' },
  { host: 'a', connection: 'close' },
  { host: 'a', connection: 'Keep-Alive, X-Secret, x-other', 'x-secret': '1', 'x-other': ['a', 'b'], 'x-kept': '2' },
  { host: 'a', connection: ['x-one', 'x-two'], 'x-one': '1', 'x-two': '2', 'x-three': '3' },
  { host: 'a', te: 'trailers', 'content-type': 'application/grpc' },
  { host: 'a', te: 'gzip, trailers', connection: 'te' },
  { host: 'a', te: 'gzip' },
  { host: 'a', 'transfer-encoding': 'chunked', trailer: 'x-t', upgrade: 'websocket', 'proxy-connection': 'x', 'proxy-authorization': 'b', 'proxy-authenticate': 'c' },
  { ':method': 'GET', ':path': '/', ':authority': 'a', 'content-length': 12, expect: '100-continue', 'x-undefined': undefined },
  { host: 'a', connection: ':path, , x-a', 'x-a': '1' },
];

describe('forwardedHeaders', () => {
  it('equals copy + stripHopByHop for every case, key order included', () => {
    for (const source of CASES) {
      const got = forwardedHeaders(source);
      expect(got).toEqual(reference(source));
      expect(Object.keys(got)).toEqual(Object.keys(reference(source)));
    }
  });

  it('leaves out the skipped names as a delete after the strip would', () => {
    const skip = new Set(['host', 'expect']);
    for (const source of CASES) expect(forwardedHeaders(source, skip)).toEqual(reference(source, ['host', 'expect']));
  });

  it('returns a fresh object and leaves the source alone', () => {
    const source: MutableHeaders = { connection: 'x-a', 'x-a': '1', 'x-b': '2' };
    const before = { ...source };
    const got = forwardedHeaders(source);
    got['x-b'] = 'changed';
    expect(source).toEqual(before);
  });
});
