/**
 * The open-loop load generator as the bench runs it (dist/bench/load/open-loop-client.js, a child
 * process on loopback): its one-line JSON contract, for a good run and for a bad command line.
 * Needs `npm run build:ts` first, like the other bench tests that spawn compiled roles.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { parseOpenLoopReport, OpenLoopReportError } from '../../bench/load/open-loop.js';

const CLIENT = join(import.meta.dirname, '..', '..', 'dist', 'bench', 'load', 'open-loop-client.js');

/** stdout and exit status of the generator; it prints JSON even when it fails. */
async function runClient(args: string[]): Promise<{ stdout: string; code: number }> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [CLIENT, ...args], { timeout: 30_000 });
    return { stdout, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; code?: number };
    return { stdout: e.stdout ?? '', code: typeof e.code === 'number' ? e.code : -1 };
  }
}

describe('open-loop-client', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.close();
    server = undefined;
  });

  it('answers a malformed command line with a JSON error that names the option and the usage', async () => {
    const { stdout, code } = await runClient(['--bogus', '1']);
    expect(code).toBe(1);
    const doc = JSON.parse(stdout.trim()) as { ok: boolean; error: string };
    expect(doc.ok).toBe(false);
    expect(doc.error).toMatch(/--bogus/);
    expect(doc.error).toMatch(/usage: open-loop-client --host H --port P/);
    expect(() => parseOpenLoopReport(stdout)).toThrow(OpenLoopReportError);
  });

  it('measures a fixed-rate run against a loopback server and reports it', async () => {
    server = createServer((_req, res) => res.end('x'.repeat(64)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const { stdout, code } = await runClient(['--host', '127.0.0.1', '--port', String(port), '--rate', '200', '--connections', '2', '--duration', '1', '--warmup', '0']);
    expect(code).toBe(0);
    const report = parseOpenLoopReport(stdout);
    expect(report.errors).toBe(0);
    expect(report.completed).toBe(report.scheduled);
    expect(report.scheduled).toBeGreaterThanOrEqual(190);
    expect(report.latencyMs.p50).toBeGreaterThan(0);
    expect(report.latencyMs.max).toBeGreaterThanOrEqual(report.latencyMs.p99);
  });
});
