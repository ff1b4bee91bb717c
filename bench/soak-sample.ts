/** Samples of a measured process for the soak (bench/soak-run.ts, bench/soak-slow-reader.ts). */
import { readdir, readFile } from 'node:fs/promises';
import type { ProcessSample } from './soak-verdict.js';

/** RSS (KiB, VmRSS) and open descriptors of one process, from /proc. */
export async function sampleProcess(pid: number): Promise<ProcessSample> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!rss) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return { rssKib: Number(rss[1]), fds: (await readdir(`/proc/${pid}/fd`)).length };
}
