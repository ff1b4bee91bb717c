/**
 * What the bench CLIs (waypoint.ts, gateway.ts) share: commander argument parsers, writing the
 * JSON and Markdown results, and the exit path that lets a harness's exit hook kill its children.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError } from 'commander';

export function wholeNumber(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return n;
  };
}

/** A comma-separated subset of `allowed`, in the order given. */
export function subsetOf<T extends string>(allowed: readonly T[], what: string) {
  return (value: string): T[] => {
    const list = value.split(',').map((p) => p.trim()).filter(Boolean);
    for (const p of list) if (!allowed.includes(p as T)) throw new InvalidArgumentError(`unknown ${what} ${p}: expected some of ${allowed.join(', ')}`);
    return list as T[];
  };
}

/** Writes `<outDir>/<name>-<startedAt>.{json,md}`, prints the Markdown on stdout and the JSON's path on stderr. */
export async function writeBenchResults(outDir: string, name: string, result: { startedAt: string }, markdown: string): Promise<void> {
  await mkdir(outDir, { recursive: true });
  const stem = join(outDir, `${name}-${result.startedAt.replace(/[:.]/g, '-')}`);
  await writeFile(`${stem}.json`, `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(`${stem}.md`, markdown);
  process.stdout.write(markdown);
  process.stderr.write(`results: ${stem}.json\n`);
}

/** Runs `main`; Ctrl-C / SIGTERM exit through process.exit so the harness's exit hook kills its children by pid. */
export function runBenchCli(name: string, main: () => Promise<void>): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  main().catch((err: unknown) => {
    process.stderr.write(`${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
