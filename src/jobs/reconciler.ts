import type { MikroORM } from "@mikro-orm/postgresql";
import type PgBoss from "pg-boss";
import type { Logger } from "pino";
import type { ReconcileReport, ReconcileService } from "../billing/reconcile.service";
import { startBoss } from "./boss";

const QUEUE = "reconcile";

/**
 * Runs reconciliation every `intervalSeconds` through a pg-boss queue on the
 * same database: every server process enqueues with a singleton key per
 * interval (one job per interval, whoever sends it) and works the queue, so
 * several processes share the work without doing a run twice, and one
 * process alone also works.
 *
 * The queue is worked by a loop of our own (fetch, run, then complete or
 * fail, each awaited) rather than `boss.work()`: pg-boss's worker records a
 * job's outcome without waiting for it, so a database error at that moment
 * (a blip, or the pool closing at shutdown) was an unhandled rejection,
 * which ends a Node process.
 */
export class Reconciler {
  private ownBoss?: PgBoss;
  private timer?: NodeJS.Timeout;
  private running?: Promise<ReconcileReport>;
  private queued?: Promise<ReconcileReport>;
  private loop?: Promise<void>;
  private sending?: Promise<unknown>;
  private stopping = false;
  private wake?: () => void;

  constructor(
    private readonly orm: MikroORM,
    private readonly service: ReconcileService,
    private readonly logger: Logger,
    private readonly intervalSeconds: number,
  ) {}

  /** `shared`: the process's pg-boss (src/jobs/boss.ts), stopped by its owner; without it the reconciler starts its own. */
  async start(shared?: PgBoss): Promise<void> {
    if (this.intervalSeconds <= 0) return;
    const boss = shared ?? (this.ownBoss = await startBoss(this.orm, this.logger));
    // "short": at most one run waits in the queue, whoever enqueued it. Not "singleton": its one-active-job
    // rule keeps a job taken by a process that died mid-run blocking every later run until the job
    // expires, i.e. reconciliation would stall for minutes exactly when a crash needs it. Two runs
    // overlapping (a run longer than the interval) are harmless: every step is idempotent under row locks.
    const queue = { name: QUEUE, policy: "short", retryLimit: 0, expireInSeconds: Math.max(60, this.intervalSeconds * 5) } as const;
    await boss.createQueue(QUEUE, queue);
    await boss.updateQueue(QUEUE, queue); // a queue created by an earlier version keeps its old policy otherwise
    this.loop = this.work(boss, Math.max(0.5, Math.min(this.intervalSeconds, 2)) * 1000).catch((err: Error) =>
      this.logger.error({ err: err.message }, "reconciliation queue loop ended"),
    );
    const enqueue = () =>
      (this.sending = boss
        .send(QUEUE, {}, { singletonKey: QUEUE, singletonSeconds: this.intervalSeconds })
        .catch((err: Error) => this.logger.warn({ err: err.message }, "could not enqueue reconciliation")));
    await enqueue();
    this.timer = setInterval(enqueue, this.intervalSeconds * 1000);
    this.timer.unref();
  }

  /**
   * Takes the queue's jobs one at a time until stop(); each job's outcome is
   * awaited and a failure to record it logged. (pg-boss's fetch itself answers
   * no jobs when the database fails: the loop then polls again.)
   */
  private async work(boss: PgBoss, pollMs: number): Promise<void> {
    while (!this.stopping) {
      let took = false;
      try {
        const [job] = await boss.fetch(QUEUE, { batchSize: 1 });
        if (job) {
          took = true;
          let failed = false;
          let message = "";
          try {
            await this.runOnce();
          } catch (err) {
            failed = true;
            message = err instanceof Error ? err.message : String(err);
          }
          if (failed) {
            this.logger.warn({ err: message, job: job.id }, "reconciliation run failed");
            await boss.fail(QUEUE, job.id, { message });
          } else {
            await boss.complete(QUEUE, job.id);
          }
        }
      } catch (err) {
        // The job's outcome could not be recorded: it expires (expireInSeconds) and a later interval runs again.
        this.logger.warn({ err: (err as Error).message }, "reconciliation queue: a database call failed");
      }
      if (took || this.stopping) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, pollMs);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /**
   * One reconciliation run in this process (also used by tests and the queue
   * worker). Runs never overlap: a caller arriving during a run gets a fresh
   * run after it (shared by everyone who asked meanwhile), because the run in
   * progress may have read the database before the caller's change.
   */
  runOnce(): Promise<ReconcileReport> {
    if (this.running) {
      this.queued ??= this.running
        .catch(() => undefined)
        .then(() => {
          this.queued = undefined;
          return this.runOnce();
        });
      return this.queued;
    }
    const run = this.service
      .runOnce({ em: this.orm.em.fork(), requestId: `reconcile-${Date.now()}`, log: this.logger.child({ job: "reconcile" }) })
      .finally(() => {
        if (this.running === run) this.running = undefined;
      });
    this.running = run;
    return run;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.stopping = true;
    this.wake?.();
    // The job in hand is run to its end and its outcome recorded before the pool can close.
    if (this.loop) await this.loop;
    if (this.sending) await this.sending;
    if (this.ownBoss) await this.ownBoss.stop({ graceful: true, wait: true, timeout: 10_000 });
    if (this.queued) await this.queued.catch(() => undefined);
    if (this.running) await this.running.catch(() => undefined);
  }
}
