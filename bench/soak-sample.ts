/** Samples of a measured process for the soak (bench/soak-run.ts, bench/soak-slow-reader.ts). */
import { readdir, readFile } from 'node:fs/promises';
import { parseProcStat } from './proc-stat.js';
import type { ProcessSample } from './soak-verdict.js';

/** USER_HZ: 100 on every Linux architecture Node runs on (sysconf(_SC_CLK_TCK)). */
const CLOCK_TICKS = 100;

/** RSS (KiB, VmRSS), open descriptors and CPU seconds of one process, from /proc. */
export async function sampleProcess(pid: number): Promise<ProcessSample> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!rss) throw new Error(`no VmRSS in /proc/${pid}/status`);
  const stat = parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
  const fds = (await readdir(`/proc/${pid}/fd`)).length;
  return { rssKib: Number(rss[1]), fds, ...(stat ? { cpuSeconds: (stat.utime + stat.stime) / CLOCK_TICKS } : {}) };
}
