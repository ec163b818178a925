/** One call waiting in a batch: its input and how to answer it. */
export interface Pending<I, O> {
  readonly input: I;
  /** Answers the call, or hands it over: answered as `value` settles (another call's answer). */
  resolve(value: O | PromiseLike<O>): void;
  reject(err: unknown): void;
}

/**
 * Collects the calls made in one turn of the event loop and runs them
 * together: a burst of webhooks whose requests were read in the same turn
 * shares one statement and one commit instead of one each. Nothing waits for
 * a batch to fill: the batch runs after the I/O of the turn (`setImmediate`),
 * so a call alone is a batch of one, at the cost of one pass of the loop.
 *
 * With `maxRunning`, at most that many batches run at once: a call made
 * while they all run waits for one of them to end, and joins the next batch
 * with every call that arrived meanwhile (group commit). Under a burst the
 * batches grow with the load instead of each call holding a transaction and
 * a connection of its own.
 *
 * `run` answers each pending call (resolve or reject); a call it leaves
 * unanswered, or every unanswered call of a batch whose `run` throws, is
 * rejected, so no caller waits forever. `run` must not wait for a call of
 * its own batcher: with every slot taken, that call would never start.
 */
export class TurnBatcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private scheduled = false;
  private running = 0;

  constructor(
    private readonly max: number,
    private readonly run: (batch: Pending<I, O>[]) => Promise<void>,
    private readonly maxRunning = Infinity,
  ) {}

  /** `first`: the call goes ahead of those waiting (one handed back by a batch, which has waited its turn already). */
  push(input: I, opts: { first?: boolean } = {}): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      const pending = { input, resolve, reject };
      if (opts.first) this.queue.unshift(pending);
      else this.queue.push(pending);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.queue.length === 0 || this.running >= this.maxRunning) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    while (this.queue.length > 0 && this.running < this.maxRunning) {
      this.running++;
      void this.runBatch(this.queue.splice(0, this.max)).finally(() => {
        this.running--;
        this.schedule();
      });
    }
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
