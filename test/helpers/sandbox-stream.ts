/**
 * A paced stream through the sandbox mesh, for "no byte lost" checks: a server pod runs
 * `busybox nc -ll -e <script>` with STREAM_SCRIPT, which reads a line count and sends that many
 * numbered lines, one every STREAM_INTERVAL_S; the client is `busybox nc` in another pod.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { expect } from 'vitest';

/** Lines the stream server sends, one every 100 ms. */
export const STREAM_INTERVAL_S = 0.1;
const AMESH = join(import.meta.dirname, '..', '..', 'bin', 'amesh.js');

export const STREAM_SCRIPT = `#!/bin/sh\nread n\ni=1\nwhile [ "$i" -le "$n" ]; do echo "line $i"; i=$((i+1)); sleep ${STREAM_INTERVAL_S}; done\n`;

/** Reads `lines` numbered lines from `ip:port` through `nc` in pod `clientRef` (ns/pod). */
export function openStream(dir: string, clientRef: string, ip: string, port: number, lines: number): Promise<{ out: string; code: number | null }> {
  const child = spawn(process.execPath, [AMESH, 'sandbox', 'exec', '--dir', dir, clientRef, '--', 'busybox', 'nc', ip, String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
  // The server's first read is the line count; stdin stays open until it has sent them all.
  child.stdin.write(`${lines}\n`);
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), (lines * STREAM_INTERVAL_S + 120) * 1000);
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(killer);
      resolve({ out, code });
    }),
  );
}

export function expectWholeStream(out: string, lines: number): void {
  const got = out.trim().split('\n');
  expect(got.length, `received ${got.length} of ${lines} lines; last: ${got.at(-1)}`).toBe(lines);
  for (let i = 0; i < lines; i++) if (got[i] !== `line ${i + 1}`) expect(got[i], `line ${i + 1}`).toBe(`line ${i + 1}`);
}

/**
 * How a stream ended, as the client's socket saw it: `fin` (a clean end), or the socket error's
 * code (`ECONNRESET`, …). busybox nc exits 0 either way, so this variant reads through Node.
 */
export type StreamEnding = 'fin' | string;

/** Like openStream, but the client is a Node one-liner that also reports how the connection ended. */
export function openStreamReportingEnd(dir: string, clientRef: string, ip: string, port: number, lines: number): Promise<{ out: string; ending: StreamEnding | undefined }> {
  const client =
    `const s=require('node:net').connect(${port},${JSON.stringify(ip)},()=>s.write('${lines}\\n'));` +
    `s.on('data',(d)=>process.stdout.write(d));` +
    `s.on('end',()=>{process.stderr.write('ENDING fin\\n');s.destroy();});` +
    `s.on('error',(e)=>{process.stderr.write('ENDING '+(e.code||e.message)+'\\n');process.exitCode=1;});`;
  const child = spawn(process.execPath, [AMESH, 'sandbox', 'exec', '--dir', dir, clientRef, '--', 'node', '-e', client], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), (lines * STREAM_INTERVAL_S + 120) * 1000);
  return new Promise((resolve) =>
    child.on('exit', () => {
      clearTimeout(killer);
      resolve({ out, ending: /ENDING (\S+)/.exec(err)?.[1] });
    }),
  );
}
