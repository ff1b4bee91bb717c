/**
 * iperf3 as the bulk-throughput load generator: the command lines we run and the parts of its
 * `--json` output we report. The receiver's byte count is the truth (what made it through the
 * path); the sender's count includes bytes still queued in socket buffers when the test ended.
 */

export interface Iperf3ClientSpec {
  host: string;
  port: number;
  seconds: number;
  streams: number;
  /** `-R`: the server sends, the client receives. */
  reverse: boolean;
}

export interface Iperf3Result {
  /** Bytes counted by the receiving side. */
  bytes: number;
  seconds: number;
  bitsPerSecond: number;
  /** TCP retransmits seen by the sender (absent when iperf3 could not read them). */
  retransmits: number | undefined;
  streams: number;
  reverse: boolean;
}

export class Iperf3OutputError extends Error {
  readonly code = 'BENCH_IPERF3_OUTPUT';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'Iperf3OutputError';
  }
}

export function iperf3ClientArgv(spec: Iperf3ClientSpec): string[] {
  return [
    'iperf3',
    '--client', spec.host,
    '--port', String(spec.port),
    '--time', String(spec.seconds),
    '--parallel', String(spec.streams),
    ...(spec.reverse ? ['--reverse'] : []),
    // Fail fast instead of hanging when the path is broken.
    '--connect-timeout', '5000',
    '--json',
  ];
}

/** One test, then exit: every run starts from a fresh server, so a stuck test cannot leak into the next. */
export function iperf3ServerArgv(port: number): string[] {
  return ['iperf3', '--server', '--port', String(port), '--one-off'];
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/**
 * Parses `iperf3 --json` output. iperf3 3.x exits 0 even when the test failed and puts the
 * reason in a top-level `error` field, so that field is checked first.
 */
export function parseIperf3Json(text: string): Iperf3Result {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Iperf3OutputError(`iperf3 did not print JSON: ${text.trim().slice(0, 200) || '(empty output)'}`, { cause: err });
  }
  if (!isRecord(doc)) throw new Iperf3OutputError('iperf3 JSON is not an object');
  if (typeof doc.error === 'string') throw new Iperf3OutputError(`iperf3 failed: ${doc.error}`);
  const end = isRecord(doc.end) ? doc.end : {};
  const received = isRecord(end.sum_received) ? end.sum_received : undefined;
  const sent = isRecord(end.sum_sent) ? end.sum_sent : undefined;
  const bytes = num(received?.bytes);
  const seconds = num(received?.seconds);
  const bitsPerSecond = num(received?.bits_per_second);
  if (bytes === undefined || seconds === undefined || bitsPerSecond === undefined) {
    throw new Iperf3OutputError('iperf3 JSON has no end.sum_received {bytes, seconds, bits_per_second} (was this a TCP test?)');
  }
  const testStart = isRecord(doc.start) && isRecord(doc.start.test_start) ? doc.start.test_start : {};
  return {
    bytes,
    seconds,
    bitsPerSecond,
    retransmits: num(sent?.retransmits),
    streams: num(testStart.num_streams) ?? 1,
    reverse: num(testStart.reverse) === 1,
  };
}
