/**
 * Everything the benchmark creates (namespaces, processes, pinned BPF maps, temp files) registers
 * how to undo it here as soon as it exists. `run()` undoes it in reverse order, once, with every
 * step bounded in time so a hung step cannot keep the machine dirty forever; it is called from the
 * normal exit path, on errors, and on SIGINT / SIGTERM.
 */

interface Step {
  what: string;
  undo: () => Promise<unknown>;
}

export class CleanupStack {
  private readonly steps: Step[] = [];
  private running: Promise<void> | undefined;

  constructor(
    private readonly log: (line: string) => void,
    private readonly stepTimeoutMs = 30_000,
  ) {}

  /** Registers an undo step; steps run last-registered first. */
  push(what: string, undo: () => Promise<unknown>): void {
    if (this.running) throw new Error(`cleanup already started; cannot register "${what}"`);
    this.steps.push({ what, undo });
  }

  get started(): boolean {
    return this.running !== undefined;
  }

  /** Runs every step once; later calls return the same promise. Never rejects. */
  run(): Promise<void> {
    this.running ??= this.unwind();
    return this.running;
  }

  private async unwind(): Promise<void> {
    for (const step of this.steps.reverse()) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), this.stepTimeoutMs);
      });
      try {
        const outcome = await Promise.race([step.undo().then(() => 'done' as const), timeout]);
        if (outcome === 'timeout') this.log(`cleanup: ${step.what} did not finish within ${this.stepTimeoutMs / 1000} s; moving on`);
      } catch (err) {
        this.log(`cleanup: ${step.what} failed: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        clearTimeout(timer);
      }
    }
    this.steps.length = 0;
  }
}
