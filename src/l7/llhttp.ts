/**
 * The runtime's llhttp binding, as Node's own HTTP client and server use it (`_http_common`'s
 * HTTPParser): the one HTTP/1.1 parser of the process, native, with the same limits and
 * leniency as `http.request` and `http.Server`. This is the only module that reaches for it;
 * its exact interface is declared here (Node 20 and 24 alike; `kOnBody` gets a Buffer view of
 * the chunk being parsed). The waypoint's lean client (http1-client/) parses responses with it,
 * its lean server (http1-server/) requests.
 *
 * Considered instead: undici (its own llhttp in WebAssembly; a new dependency and a second
 * parser), a hand-written parser (llhttp is what every Node server and client here trusts).
 */
import { createRequire } from 'node:module';

export interface LlhttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  /** Bytes consumed, or the parse error. */
  execute(chunk: Buffer): number | Error;
  /** End of input (a body delimited by the connection's close completes here). */
  finish(): number | Error | undefined;
  close(): void;
  [key: number]: unknown;
}

export interface LlhttpParserClass {
  new (): LlhttpParser;
  readonly REQUEST: number;
  readonly RESPONSE: number;
  readonly kOnHeaders: number;
  readonly kOnHeadersComplete: number;
  readonly kOnBody: number;
  readonly kOnMessageComplete: number;
  readonly kLenientNone: number;
}

/**
 * `kOnHeadersComplete(versionMajor, versionMinor, rawHeaders, method, url, statusCode,
 * statusMessage, upgrade, shouldKeepAlive)`: rawHeaders and url are undefined when the head
 * came in several chunks (they were handed to `kOnHeaders` as they came); method is an index
 * into `METHODS`. Returns 0 to parse a body, 1 to say "no body follows" (HEAD), 2 to stop
 * right after the head (Node's "upgrade": `execute` then returns the head's length and the
 * parser needs `initialize` again before another message).
 */
export type OnHeadersComplete = (
  versionMajor: number,
  versionMinor: number,
  rawHeaders: string[] | undefined,
  method: unknown,
  url: unknown,
  statusCode: number,
  statusMessage: string,
  upgrade: boolean,
  shouldKeepAlive: boolean,
) => number;

const require = createRequire(import.meta.url);

const common = require('_http_common') as { HTTPParser: LlhttpParserClass; methods: readonly string[] };

export const HTTPParser: LlhttpParserClass = common.HTTPParser;
/** Request methods by the index `kOnHeadersComplete` passes. */
export const METHODS: readonly string[] = common.methods;
