/** One call waiting in a batch: its input and how to answer it. */
export interface Pending<I, O> {
  readonly input: I;
  resolve(value: O): void;
  reject(err: unknown): void;
}

/**
 * Collects the calls made in one turn of the event loop and runs them
 * together: a burst of webhooks whose requests were read in the same turn
 * shares one statement and one commit instead of one each. Nothing waits for
 * a batch to fill: the batch runs after the I/O of the turn (`setImmediate`),
 * so a call alone is a batch of one, at the cost of one pass of the loop.
 *
 * `run` answers each pending call (resolve or reject); a call it leaves
 * unanswered, or every unanswered call of a batch whose `run` throws, is
 * rejected, so no caller waits forever.
 */
export class TurnBatcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private scheduled = false;

  constructor(
    private readonly max: number,
    private readonly run: (batch: Pending<I, O>[]) => Promise<void>,
  ) {}

  push(input: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    while (this.queue.length > 0) void this.runBatch(this.queue.splice(0, this.max));
  }

  private async runBatch(batch: Pending<I, O>[]): Promise<void> {
    let failure: unknown;
    try {
      await this.run(batch);
      failure = new Error("the batch ended without an answer for this call");
    } catch (err) {
      failure = err;
    }
    // A promise settles once: this rejects only the calls `run` left unanswered.
    for (const p of batch) p.reject(failure);
  }
}
