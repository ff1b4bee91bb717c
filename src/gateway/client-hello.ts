/**
 * The TLS ClientHello, read far enough to route a passthrough connection (Envoy's
 * tls_inspector): the SNI host name and the offered ALPN protocols. Pure: it looks at the bytes
 * received so far and says `need-more`, `not-tls` (with why) or what the hello offers. Nothing
 * is decrypted or answered; the bytes are relayed unchanged afterwards.
 *
 * Wire format (RFC 8446 §4.1.2, RFC 5246 §6.2, RFC 6066 §3, RFC 7301 §3.1): TLS records of type
 * handshake (22) carry the handshake message, which may span several records; the ClientHello
 * (type 1) is legacy_version(2) random(32) session_id<0..32> cipher_suites<2..2^16-2>
 * compression_methods<1..2^8-1> extensions<0..2^16-1>; extension server_name (0) holds a
 * ServerNameList of (type 0 host_name, name<1..2^16-1>); application_layer_protocol_negotiation
 * (16) a ProtocolNameList of name<1..2^8-1>.
 *
 * Bounds: the handshake message may be at most MAX_CLIENT_HELLO_BYTES (a post-quantum key share
 * makes hellos ~2 KB; 16 KiB is one full record); bigger is `not-tls`. No library parses a
 * ClientHello without terminating TLS (Node's tls only exposes SNI after a handshake with it),
 * so this is written by hand and table-tested (test/unit/gateway-client-hello.test.ts).
 */

export const MAX_CLIENT_HELLO_BYTES = 16 * 1024;

export type ClientHelloResult =
  | { kind: 'need-more' }
  | { kind: 'not-tls'; reason: string }
  | {
      kind: 'client-hello';
      /** Lower case, without a trailing dot; absent when the client sent no SNI. */
      serverName?: string;
      /** The protocols offered, in the client's order; empty when no ALPN extension. */
      alpn: string[];
    };

const RECORD_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const NAME_TYPE_HOST = 0;

class Malformed extends Error {}

/** Reads a ClientHello body with bounds checks; every overrun is Malformed. */
class Reader {
  constructor(
    private readonly buf: Buffer,
    public pos: number,
    private readonly end: number,
  ) {}

  private need(n: number): void {
    if (this.pos + n > this.end) throw new Malformed('truncated ClientHello');
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++] as number;
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }

  /** A length-prefixed vector (prefix of 1 or 2 bytes): a reader over its contents. */
  vector(prefix: 1 | 2): Reader {
    const len = prefix === 1 ? this.u8() : this.u16();
    this.need(len);
    const r = new Reader(this.buf, this.pos, this.pos + len);
    this.pos += len;
    return r;
  }

  bytes(n: number): Buffer {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  get remaining(): number {
    return this.end - this.pos;
  }
}

/**
 * The handshake bytes carried by the records in `data` so far, or why they are not TLS.
 * Stops once `want` bytes are there (the rest belongs to later messages).
 */
function handshakeBytes(data: Buffer): { bytes: Buffer; complete: boolean } | { notTls: string } {
  const parts: Buffer[] = [];
  let have = 0;
  let want = -1;
  let pos = 0;
  while (pos + 5 <= data.length) {
    const type = data[pos] as number;
    const major = data[pos + 1] as number;
    const length = data.readUInt16BE(pos + 3);
    if (type !== RECORD_HANDSHAKE) return { notTls: pos === 0 ? `not a TLS handshake record (first byte 0x${type.toString(16).padStart(2, '0')})` : 'a non-handshake record inside the ClientHello' };
    if (major !== 3) return { notTls: `unknown TLS record version ${major}.${data[pos + 2] as number}` };
    if (length === 0) return { notTls: 'an empty handshake record' };
    const fragment = data.subarray(pos + 5, Math.min(pos + 5 + length, data.length));
    parts.push(fragment);
    have += fragment.length;
    if (want < 0 && have >= 4) {
      const head = parts.length === 1 ? fragment : Buffer.concat(parts, have);
      if (head[0] !== HANDSHAKE_CLIENT_HELLO) return { notTls: `the first handshake message is type ${head[0] as number}, not a ClientHello` };
      want = 4 + head.readUIntBE(1, 3);
      if (want > MAX_CLIENT_HELLO_BYTES) return { notTls: `ClientHello of ${want} bytes is over the ${MAX_CLIENT_HELLO_BYTES}-byte limit` };
    }
    if (want >= 0 && have >= want) return { bytes: Buffer.concat(parts, have).subarray(0, want), complete: true };
    if (fragment.length < length) break; // the record is still arriving
    pos += 5 + length;
  }
  if (pos === 0 && data.length > 0 && data[0] !== RECORD_HANDSHAKE) return { notTls: `not a TLS handshake record (first byte 0x${(data[0] as number).toString(16).padStart(2, '0')})` };
  return { bytes: Buffer.alloc(0), complete: false };
}

function parseServerName(ext: Reader): string | undefined {
  const list = ext.vector(2);
  while (list.remaining > 0) {
    const type = list.u8();
    const name = list.vector(2);
    if (type !== NAME_TYPE_HOST) continue;
    const host = name.bytes(name.remaining).toString('latin1');
    if (host.length === 0) throw new Malformed('an empty SNI host name');
    // RFC 6066: "HostName" is ASCII, without a trailing dot.
    if (!/^[\x21-\x7e]+$/.test(host)) throw new Malformed('an SNI host name with non-ASCII or control bytes');
    return host.toLowerCase().replace(/\.$/, '');
  }
  return undefined;
}

function parseAlpn(ext: Reader): string[] {
  const list = ext.vector(2);
  const out: string[] = [];
  while (list.remaining > 0) {
    const name = list.vector(1);
    if (name.remaining === 0) throw new Malformed('an empty ALPN protocol name');
    out.push(name.bytes(name.remaining).toString('latin1'));
  }
  return out;
}

function parseHello(msg: Buffer): ClientHelloResult {
  const r = new Reader(msg, 4, msg.length);
  r.skip(2); // legacy_version
  r.skip(32); // random
  r.vector(1); // legacy_session_id
  r.vector(2); // cipher_suites
  r.vector(1); // legacy_compression_methods
  const result: { kind: 'client-hello'; serverName?: string; alpn: string[] } = { kind: 'client-hello', alpn: [] };
  if (r.remaining === 0) return result; // no extensions (SSLv3-era hello)
  const extensions = r.vector(2);
  while (extensions.remaining > 0) {
    const type = extensions.u16();
    const ext = extensions.vector(2);
    if (type === EXT_SERVER_NAME) {
      const name = parseServerName(ext);
      if (name !== undefined) result.serverName = name;
    } else if (type === EXT_ALPN) result.alpn = parseAlpn(ext);
  }
  return result;
}

export function parseClientHello(data: Buffer): ClientHelloResult {
  const h = handshakeBytes(data);
  if ('notTls' in h) return { kind: 'not-tls', reason: h.notTls };
  if (!h.complete) return data.length > MAX_CLIENT_HELLO_BYTES + 5 * 8 ? { kind: 'not-tls', reason: 'no complete ClientHello within the size limit' } : { kind: 'need-more' };
  try {
    return parseHello(h.bytes);
  } catch (err) {
    if (err instanceof Malformed) return { kind: 'not-tls', reason: err.message };
    throw err;
  }
}
