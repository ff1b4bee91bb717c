/**
 * The runtime's llhttp binding, as Node's own HTTP client uses it (`_http_common`'s
 * HTTPParser): the one HTTP/1.1 parser of the process, native, with the same limits and
 * leniency as `http.request`. This is the only module that reaches for it; its exact interface
 * is declared here (Node 20; `kOnBody` gets a Buffer view of the chunk being parsed).
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
  readonly RESPONSE: number;
  readonly kOnHeaders: number;
  readonly kOnHeadersComplete: number;
  readonly kOnBody: number;
  readonly kOnMessageComplete: number;
  readonly kLenientNone: number;
}

/**
 * `kOnHeadersComplete(versionMajor, versionMinor, rawHeaders, method, url, statusCode,
 * statusMessage, upgrade, shouldKeepAlive)`; returns 1 to say "no body follows" (HEAD).
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

export const HTTPParser: LlhttpParserClass = (require('_http_common') as { HTTPParser: LlhttpParserClass }).HTTPParser;
