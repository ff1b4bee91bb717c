/** Progress on stderr (stdout carries only the Markdown report): `[3/12] amesh iperf3 -P4 -R run 2/3 …`. */
export class Progress {
  private done = 0;

  constructor(
    private readonly total: number,
    private readonly write: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
  ) {}

  /** Starts the next counted step. */
  step(text: string): void {
    this.done++;
    this.write(`[${this.done}/${this.total}] ${text}`);
  }

  /** A detail line under the current step. */
  info(text: string): void {
    this.write(`      ${text}`);
  }
}
