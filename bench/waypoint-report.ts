/** The Markdown report of the waypoint bench (bench/waypoint-harness.ts). */
import type { WaypointBenchResult, WaypointPathResult } from './waypoint-harness.js';

const num = (n: number | undefined, digits = 0): string => (n === undefined ? '—' : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));

function row(r: WaypointPathResult): string {
  if (r.skipped || r.error) return `| ${r.label} | ${r.skipped ? `skipped: ${r.skipped}` : `failed: ${r.error}`} | | | | | | |`;
  const m = r.maxRate;
  const l = r.latency;
  return `| ${r.label} | ${num(m?.requestsPerSecond)} | ${num(m?.proxyCpuSeconds, 2)} | ${num(m?.requestsPerCoreSecond)} | ${num(m?.ratioToHaproxy, 2)} | ${num(l?.p50Ms, 2)} / ${num(l?.p99Ms, 2)} | ${num(l?.addedP99Ms, 2)}${l?.pairedDirectP99Ms !== undefined ? ` (${num(l.pairedDirectP99Ms, 2)})` : ''} | ${num(l?.coresPer1000Rps, 3)} |`;
}

const verdict = (value: number | undefined, target: number, atLeast: boolean): string =>
  value === undefined ? 'not measured' : `${value} (${(atLeast ? value >= target : value <= target) ? 'met' : 'NOT met'})`;

export function waypointMarkdown(result: WaypointBenchResult): string {
  const s = result.settings;
  const e = result.environment;
  const lines = [
    `# Waypoint bench (BENCHMARKS.md scenario 6) — ${result.startedAt}`,
    '',
    `Routing on every path: \`x-user: beta\` → v2, else v1/v2 weighted 90/10. ${s.responseBytes} B responses, ${s.connections} connections.`,
    `Max rate: wrk -t1 -c${s.connections}, ${s.maxRateSeconds} s (after ${s.warmupSeconds} s warm-up). Latency: open loop ${s.rate} req/s over ${s.connections} connections, ${s.latencySeconds} s, each path paired with a direct run just before it.`,
    `Node ${e.node} (OpenSSL ${e.openssl}), ${e.cpus} CPUs, haproxy ${e.haproxy ?? 'not installed'}, nginx ${e.nginx ?? 'not installed'}, wrk ${e.wrk ?? 'not installed'}; load average ${e.loadAverageStart.map((n) => n.toFixed(2)).join(' ')} → ${e.loadAverageEnd.map((n) => n.toFixed(2)).join(' ')}.`,
    '',
    '| path | req/s | proxy CPU-s | req/s per proxy core | ÷ haproxy | p50 / p99 ms @rate | added p99 ms (vs paired direct p99) | proxy cores /1000 req/s |',
    '|---|---|---|---|---|---|---|---|',
    ...result.paths.map(row),
    '',
  ];
  const agents = result.paths.filter((r) => r.maxRate?.clientAgentCpuSeconds !== undefined);
  if (agents.length > 0) {
    lines.push('The rest of the path in the max-rate run (amesh: the client and destination node agents; haproxy-mtls: the tcp-mode haproxy originating mTLS):', '');
    lines.push('| path | proxy CPU-s | client side CPU-s | destination side CPU-s | req/s per core, all of them |', '|---|---|---|---|---|');
    for (const r of agents) {
      const m = r.maxRate!;
      lines.push(`| ${r.label} | ${num(m.proxyCpuSeconds, 2)} | ${num(m.clientAgentCpuSeconds, 2)} | ${num(m.destAgentCpuSeconds, 2)} | ${num(m.requestsPerCoreSecondWithAgents)} |`);
    }
    lines.push('');
  }
  const direct = result.paths.find((r) => r.path === 'direct')?.maxRate;
  if (direct?.backendRequestsPerCoreSecond !== undefined) {
    lines.push(`Ceiling for a Node proxy: the bare node:http backend served ${num(direct.backendRequestsPerCoreSecond)} req/s per core on the direct path (${num(direct.backendCpuSeconds, 2)} CPU-s); a Node HTTP/1.1 proxy parses and writes every request and response twice.`, '');
  }
  const t = result.targets;
  lines.push(
    `Targets (issue #6): req/s per core ≥ ${t.rpsPerCoreVsHaproxy.target}× haproxy — HBONE both hops ${verdict(t.rpsPerCoreVsHaproxy.hbone, t.rpsPerCoreVsHaproxy.target, true)}, plain upstream ${verdict(t.rpsPerCoreVsHaproxy.plain, t.rpsPerCoreVsHaproxy.target, true)}; ` +
      `added p99 ≤ ${t.addedP99Ms.target} ms — HBONE both hops ${verdict(t.addedP99Ms.hbone, t.addedP99Ms.target, false)}, plain upstream ${verdict(t.addedP99Ms.plain, t.addedP99Ms.target, false)}.`,
    '',
  );
  const errs = result.paths.filter((r) => (r.maxRate?.errors ?? 0) > 0 || (r.latency?.errors ?? 0) > 0);
  for (const r of errs) lines.push(`- ${r.label}: ${r.maxRate?.errors ?? 0} errors at max rate, ${r.latency?.errors ?? 0} in the latency run ${JSON.stringify(r.latency?.errorKinds ?? {})}`);
  for (const note of result.notes) lines.push(`- ${note}`);
  return `${lines.join('\n')}\n`;
}
