/** The Markdown report of the gateway bench (bench/gateway-harness.ts): medians with min–max over the runs. */
import type { GatewayBenchResult, GatewayPathResult } from './gateway-harness.js';
import type { Summary } from './stats.js';

const num = (n: number | undefined, digits = 0): string => (n === undefined ? '—' : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));

/** `median (min–max)`, or the one value. */
function med(s: Summary | undefined, digits = 0): string {
  if (!s) return '—';
  return s.n > 1 ? `${num(s.median, digits)} (${num(s.min, digits)}–${num(s.max, digits)})` : num(s.median, digits);
}

function row(r: GatewayPathResult): string {
  if (r.skipped) return `| ${r.label} | skipped: ${r.skipped} | | | | | |`;
  const s = r.summary;
  const perCore = r.path === 'direct' ? `backend: ${med(s.backendRequestsPerCoreSecond)}` : med(s.requestsPerCoreSecond);
  return `| ${r.label} | ${med(s.requestsPerSecond)} | ${perCore} | ${med(s.p50Ms, 2)} / ${med(s.p90Ms, 2)} / ${med(s.p99Ms, 2)} | ${r.path === 'direct' ? '—' : med(s.addedP99Ms, 2)} | ${med(s.coresPer1000Rps, 3)} | ${r.runs.filter((x) => !x.error).length}/${r.runs.length} |`;
}

const ratio = (n: number | undefined): string => (n === undefined ? 'not measured' : `${n.toFixed(2)}×`);

export function gatewayMarkdown(result: GatewayBenchResult): string {
  const s = result.settings;
  const e = result.environment;
  const lines = [
    `# Gateway bench (issue #8) — ${result.startedAt}`,
    '',
    `Edge HTTPS (TLS 1.3, keep-alive, HTTP/1.1) → proxy → one backend, ${s.responseBytes} B answers, ${s.connections} connections; median (min–max) of ${s.runs} interleaved runs.`,
    `Max rate: wrk -t1 -c${s.connections}, ${s.maxRateSeconds} s per run after ${s.warmupSeconds} s warm-up. Latency: open loop ${s.rate} req/s over ${s.connections} connections, ${s.latencySeconds} s per run (wall-clock schedule, HdrHistogram); added p99 = path − the same run's direct p99.`,
    `amesh ${e.amesh}, Node ${e.node} (OpenSSL ${e.openssl}), nginx ${e.nginx ?? 'not installed'}${e.nginxOpenssl ? ` (${e.nginxOpenssl})` : ''}, wrk ${e.wrk ?? 'not installed'}, kernel ${e.kernel}, ${e.cpus}; load average ${e.loadAverageStart.map((n) => n.toFixed(2)).join(' ')} → ${e.loadAverageEnd.map((n) => n.toFixed(2)).join(' ')}.`,
    '',
    '| path | req/s | req/s per proxy core | p50 / p90 / p99 ms @rate | added p99 ms | proxy cores /1000 req/s | runs |',
    '|---|---|---|---|---|---|---|',
    ...result.paths.map(row),
    '',
  ];
  const amesh = result.paths.find((r) => r.path === 'amesh' && !r.skipped)?.summary;
  if (amesh?.requestsPerCoreSecondWithAgent || amesh?.destAgentCoresPer1000Rps) {
    lines.push(
      `amesh with the destination agent's CPU counted too (the HBONE hop's far end): ${med(amesh.requestsPerCoreSecondWithAgent)} req/s per core (gateway + agent); the agent alone ${med(amesh.destAgentCoresPer1000Rps, 3)} cores per 1000 req/s.`,
      '',
    );
  }
  const r = result.ratios;
  const t = result.target;
  const verdict = (met: boolean | undefined): string => (met === undefined ? '' : met ? ' — target met' : ' — target NOT met');
  lines.push(
    `**amesh ÷ nginx** (medians): req/s per proxy core ${ratio(r.requestsPerCoreSecond)}${verdict(t.requestsPerCoreMet)} (target ≥ ${t.ratio}×); ` +
      `p99 @${s.rate} req/s ${ratio(r.p99)} of nginx's, i.e. nginx p99 ÷ amesh p99 = ${ratio(r.p99NginxOverAmesh)}${verdict(t.p99Met)} (target ≥ ${t.ratio}×); ` +
      `max req/s ${ratio(r.requestsPerSecond)}; proxy cores per 1000 req/s ${ratio(r.coresPer1000Rps)}.`,
    '',
  );
  if (r.plainRequestsPerCoreSecond !== undefined || r.plainP99 !== undefined) {
    lines.push(`Without the HBONE hop (amesh-plain ÷ nginx, same topology as nginx): req/s per proxy core ${ratio(r.plainRequestsPerCoreSecond)}, p99 ${ratio(r.plainP99)} of nginx's.`, '');
  }
  for (const p of result.paths) {
    for (const run of p.runs) {
      const errs = (run.maxRate?.errors ?? 0) + (run.latency?.errors ?? 0);
      if (run.error) lines.push(`- ${p.label}, run ${run.run}: failed: ${run.error}`);
      else if (errs > 0) lines.push(`- ${p.label}, run ${run.run}: ${run.maxRate?.errors ?? 0} errors at max rate, ${run.latency?.errors ?? 0} in the latency run ${JSON.stringify(run.latency?.errorKinds ?? {})}`);
    }
  }
  const loads = result.paths.flatMap((p) => p.runs.map((run) => run.loadAverage1m));
  if (loads.length > 0) lines.push(`- 1-minute load average at the start of each run: ${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)} on ${e.cpus.split(' ')[0]} CPUs (other work on the machine shows up in p99 and spread).`);
  for (const note of result.notes) lines.push(`- ${note}`);
  return `${lines.join('\n')}\n`;
}
