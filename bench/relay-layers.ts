/**
 * `node dist/bench/relay-layers.js`: what each layer of a tunnel costs a Node relay, per request,
 * on loopback. The same open-loop HTTP/1.1 load as the latency scenario (1 KiB answers from the
 * bench's node:http backend, keep-alive) goes client → near → far → backend, where near is the
 * measured relay and the tunnel between near and far is one of:
 *
 *   tcp        plain TCP (the floor: two sockets and src/net/relay.ts)
 *   tls        TLS 1.3, a connection per client connection
 *   h2         node:http2 CONNECT streams over one TLS connection (the node agent's HBONE stack)
 *   h2-framed  the same CONNECT streams framed by hand in JavaScript (relay-layers-h2-framed.ts)
 *   hbone      the node agent's own HBONE pool and server (src/hbone/): mutual TLS with SPIFFE
 *              certificates from the bench's CA, the agents' settings and checks
 *
 * It answers "what would a hand-written (or native) HTTP/2 data path save?" without a mesh: the
 * difference between h2 and h2-framed is node:http2's share, between tls and tcp Node's TLS
 * layer's, and between hbone and h2 what amesh's HBONE code adds to bare node:http2. Every layer's processes stay up for the whole run and the rounds are interleaved, so
 * the machine's drift hits every layer alike. CPU is read from /proc for near and far, over the
 * load's whole run (warm-up included, at the same rate), per 10 000 requests.
 *
 * One JSON line per measured run on stdout, then a summary line; progress on stderr. Traffic stays
 * on 127.0.0.1; every child is stopped by pid at the end, also on errors and Ctrl-C.
 */
import { Command } from 'commander';
import { subsetOf, wholeNumber } from './cli.js';
import { Progress } from './progress.js';
import { relayLayersSteps, runRelayLayers, type RelayLayersOptions } from './relay-layers-harness.js';
import { RELAY_LAYERS } from './relay-layers-topology.js';

const o = new Command('bench-relay-layers')
  .description('CPU per request of a Node relay by tunnel layer (tcp, tls, node:http2, hand-framed HTTP/2, amesh HBONE), on loopback')
  .option('--layers <list>', `comma-separated, of ${RELAY_LAYERS.join(', ')}`, subsetOf(RELAY_LAYERS, 'layer'), [...RELAY_LAYERS])
  .option('--rounds <n>', 'interleaved rounds', wholeNumber(1, 20), 3)
  .option('--seconds <n>', 'measured seconds per run', wholeNumber(1, 600), 10)
  .option('--warmup <n>', 'warm-up seconds per run (same rate, in the CPU figure too)', wholeNumber(0, 60), 2)
  .option('--rate <n>', 'requests per second (open loop)', wholeNumber(1, 20_000), 1000)
  .option('--connections <n>', 'keep-alive client connections', wholeNumber(1, 1024), 16)
  .option('--bytes <n>', 'response body bytes', wholeNumber(0, 1024 * 1024), 1024)
  .option('--no-settle', 'start each run at once instead of waiting (at most 20 s) for the machine to be below 15 % busy')
  .parse()
  .opts<RelayLayersOptions>();

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
try {
  const { summary } = await runRelayLayers(o, new Progress(relayLayersSteps(o)), (run) => process.stdout.write(`${JSON.stringify(run)}\n`));
  process.stdout.write(`${JSON.stringify({ summary, settings: o, node: process.version })}\n`);
} catch (err) {
  process.stderr.write(`relay-layers: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
