import type { MikroORM } from "@mikro-orm/postgresql";
import PgBoss from "pg-boss";
import type { Logger } from "pino";
import type { ReconcileReport, ReconcileService } from "../billing/reconcile.service";

const QUEUE = "reconcile";

/**
 * pg-boss's database adapter over the ORM's own pool: one driver and, on the
 * embedded database, the single connection it allows.
 */
function ormDb(orm: MikroORM): PgBoss.Db {
  const knex = orm.em.getConnection().getKnex();
  return {
    async executeSql(text: string, values: unknown[]) {
      const client = knex.client as {
        acquireConnection(): Promise<{ query(t: string, v: unknown[]): Promise<{ rows: unknown[] }> }>;
        releaseConnection(c: unknown): Promise<void>;
      };
      const conn = await client.acquireConnection();
      try {
        return await conn.query(text, values);
      } finally {
        await client.releaseConnection(conn);
      }
    },
  };
}

/**
 * Runs reconciliation every `intervalSeconds` through a pg-boss queue on the
 * same database: every server process enqueues with a singleton key per
 * interval and works the queue, so several processes share the work without
 * doing a run twice, and one process alone also works.
 */
export class Reconciler {
  private boss?: PgBoss;
  private timer?: NodeJS.Timeout;
  private running?: Promise<ReconcileReport>;

  constructor(
    private readonly orm: MikroORM,
    private readonly service: ReconcileService,
    private readonly logger: Logger,
    private readonly intervalSeconds: number,
  ) {}

  async start(): Promise<void> {
    if (this.intervalSeconds <= 0) return;
    const boss = new PgBoss({
      db: ormDb(this.orm),
      schema: "pgboss",
      supervise: true,
      schedule: false,
      migrate: true,
    });
    boss.on("error", (err) => this.logger.warn({ err: err.message }, "pg-boss error"));
    await boss.start();
    await boss.createQueue(QUEUE, { name: QUEUE, policy: "singleton", retryLimit: 0, expireInSeconds: Math.max(60, this.intervalSeconds * 5) });
    await boss.work(QUEUE, { pollingIntervalSeconds: Math.max(0.5, Math.min(this.intervalSeconds, 2)) }, async () => {
      await this.runOnce();
    });
    this.boss = boss;
    const enqueue = () =>
      boss
        .send(QUEUE, {}, { singletonKey: QUEUE, singletonSeconds: this.intervalSeconds })
        .catch((err: Error) => this.logger.warn({ err: err.message }, "could not enqueue reconciliation"));
    await enqueue();
    this.timer = setInterval(enqueue, this.intervalSeconds * 1000);
    this.timer.unref();
  }

  /** One reconciliation run in this process (also used by tests and the queue worker). */
  runOnce(): Promise<ReconcileReport> {
    // Runs in one process never overlap; pg-boss's singleton policy keeps processes apart.
    this.running ??= this.service
      .runOnce({ em: this.orm.em.fork(), requestId: `reconcile-${Date.now()}`, log: this.logger.child({ job: "reconcile" }) })
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.boss) await this.boss.stop({ graceful: true, wait: true, timeout: 10_000 });
    if (this.running) await this.running.catch(() => undefined);
  }
}
