/**
 * Every container process a kubelet started, on disk (`<stateDir>/pids-<node>.json`), so that
 * `sandbox down` after a daemon crash can kill leftovers by pid — and only ours: each entry
 * carries the process's start time, which a recycled pid does not share.
 */
import { readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface RecordedPid {
  pid: number;
  /** /proc/<pid>/stat field 22 (as text, like src/sandbox/state.ts); undefined when unreadable at start. */
  startTicks?: string;
  node: string;
  pod: string;
  container: string;
}

export class PidRecord {
  private readonly entries = new Map<number, RecordedPid>();
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly stateDir: string,
    private readonly node: string,
  ) {}

  get file(): string {
    return join(this.stateDir, `pids-${this.node}.json`);
  }

  add(entry: Omit<RecordedPid, 'node'>): Promise<void> {
    this.entries.set(entry.pid, { ...entry, node: this.node });
    return this.flush();
  }

  remove(pid: number): Promise<void> {
    this.entries.delete(pid);
    return this.flush();
  }

  /** Writes are serialised and atomic (rename), so a crash leaves a whole file. */
  private flush(): Promise<void> {
    const body = JSON.stringify([...this.entries.values()], null, 1);
    this.writing = this.writing.then(async () => {
      const tmp = `${this.file}.tmp`;
      await writeFile(tmp, body);
      await rename(tmp, this.file);
    });
    return this.writing;
  }
}

/** Every pid recorded by any kubelet under `stateDir` (empty when there is none). */
export async function readRecordedPids(stateDir: string): Promise<RecordedPid[]> {
  let names: string[];
  try {
    names = await readdir(stateDir);
  } catch {
    return [];
  }
  const all: RecordedPid[] = [];
  for (const name of names.filter((n) => /^pids-.+\.json$/.test(n))) {
    try {
      const parsed = JSON.parse(await readFile(join(stateDir, name), 'utf8')) as unknown;
      if (Array.isArray(parsed)) all.push(...(parsed as RecordedPid[]).filter((e) => Number.isInteger(e?.pid) && e.pid > 1));
    } catch {
      // a torn or foreign file: nothing we can trust in it
    }
  }
  return all;
}
