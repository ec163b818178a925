import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { Clock } from "../clock";
import { IamportError } from "../errors";
import { FAULT_MODES, FaultError, type FaultRegistry } from "../faults";
import { paymentToWire, type Payment } from "../model";
import type { ExecutedSchedule, IamportState } from "../state";
import type { WebhookCounts, WebhookJob, WebhookSender } from "../webhooks";
import { webhookJob } from "./iamport";

/*
 * The control API (`/__emulator/*`): what a test needs beyond Iamport, in the
 * spirit of Stripe test clocks. No auth, JSON in and out, and every route
 * that causes webhooks answers only after they were delivered or failed, so
 * a test can assert on consequences without sleeping.
 */

/** An Iamport call whose answer a "hold" fault keeps back. */
export interface HeldCall {
  id: number;
  method: string;
  path: string;
}

export interface ControlDeps {
  state: IamportState;
  clock: Clock;
  faults: FaultRegistry;
  webhooks: WebhookSender;
  /** getToken calls answered and new tokens issued. */
  tokenStats(): { token_requests: number; tokens_issued: number };
  /** Calls held by "hold" faults, oldest first. */
  held(): HeldCall[];
  /** Sends the held answers (all, or the one with `id`); returns how many. */
  release(id?: number): number;
  /** Empties the state, resets the clock and clears faults. */
  reset(): void;
  /** Delivers the webhooks of schedules that ran (V1's or V2's, as each payment was made) and waits for them. */
  deliverExecuted(executed: ExecutedSchedule[]): Promise<WebhookCounts>;
  /** Base URL of the emulator, for receipt links. */
  baseUrl(): string;
}

const optionalText = z.string().optional();
const flag = z.union([z.boolean(), z.enum(["true", "false"]).transform((v) => v === "true")]);

const advanceSchema = z.object({ seconds: z.coerce.number().int().nonnegative() });

const checkoutSchema = z.object({
  merchant_uid: z.string().min(1).max(40),
  amount: z.coerce.number().nonnegative(),
  pay_method: z.enum(["card", "vbank"]).default("card"),
  customer_uid: z.string().min(1).max(80).optional(),
  name: optionalText,
  currency: optionalText,
  buyer_name: optionalText,
  buyer_email: optionalText,
  buyer_tel: optionalText,
  buyer_addr: optionalText,
  buyer_postcode: optionalText,
  custom_data: z.union([z.string(), z.record(z.string(), z.unknown())]).optional(),
  notice_url: optionalText,
  ignore_prepare: flag.optional(),
  /** Extension: which card the customer typed in the window (a test card picks the outcome). */
  card_number: optionalText,
  pg: optionalText,
});

const impUidSchema = z.object({ imp_uid: z.string().min(1) });

const redeliverSchema = z.object({
  imp_uid: z.string().min(1),
  times: z.coerce.number().int().min(1).max(10_000).default(1),
  concurrency: z.coerce.number().int().min(1).max(1_000).default(1),
});

const releaseSchema = z.object({ id: z.coerce.number().int().positive().optional() });

const faultSchema = z.object({
  route: z.string().optional(),
  mode: z.enum(FAULT_MODES),
  times: z.coerce.number().int().min(0).default(1),
});

class ControlError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function parse<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const r = schema.safeParse(body ?? {});
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue.path.length > 0 ? issue.path.join(".") : "body";
    throw new ControlError(400, `${where}: ${issue.message}`);
  }
  return r.data;
}

type Handler = (req: FastifyRequest, reply: FastifyReply) => Promise<unknown> | unknown;

/** The control API's routes, for registration under the /__emulator prefix. */
export function controlRoutes(deps: ControlDeps): (router: FastifyInstance) => Promise<void> {
  return async (router) => registerControlRoutes(router, deps);
}

function registerControlRoutes(router: FastifyInstance, deps: ControlDeps): void {
  const { state, clock, faults, webhooks } = deps;

  // Control errors are plain JSON `{error}`; Iamport refusals from the state keep their message.
  const handle =
    (fn: Handler): Handler =>
    async (req, reply) => {
      try {
        return await fn(req, reply);
      } catch (e) {
        if (e instanceof ControlError) return reply.code(e.status).send({ error: e.message });
        if (e instanceof FaultError) return reply.code(400).send({ error: e.message });
        if (e instanceof IamportError) {
          const status = e.httpStatus === 200 ? 409 : e.httpStatus;
          return reply.code(status).send({ error: e.message, code: e.code });
        }
        throw e;
      }
    };

  const deliver = (p: Payment, source: WebhookJob["source"]): Promise<WebhookCounts> =>
    webhooks.deliverAll([webhookJob(p, source)]);

  router.get("/health", (_req, reply) => {
    reply.send({ status: "ok", now: clock.now(), ...state.counts(), ...deps.tokenStats() });
  });

  router.get("/clock", (_req, reply) => {
    reply.send({ now: clock.now() });
  });

  router.post(
    "/clock/advance",
    handle(async (req, reply) => {
      const { seconds } = parse(advanceSchema, req.body);
      const now = clock.advance(seconds);
      const executed = state.runDue(now);
      const counts = await deps.deliverExecuted(executed);
      reply.send({
        now,
        executed: executed.map(({ schedule, payment }) => ({
          merchant_uid: schedule.merchant_uid,
          imp_uid: payment?.imp_uid ?? null,
          status: payment?.status ?? "failed",
        })),
        webhooks: counts,
      });
    }),
  );

  router.post(
    "/checkout",
    handle(async (req, reply) => {
      const input = parse(checkoutSchema, req.body);
      if (input.amount === 0 && (!input.customer_uid || input.pay_method !== "card")) {
        throw new ControlError(400, "amount: 0 is only allowed when issuing a billing key (card with customer_uid)");
      }
      const p = state.checkout({
        merchant_uid: input.merchant_uid,
        amount: input.amount,
        pay_method: input.pay_method,
        customer_uid: input.customer_uid ?? null,
        name: input.name ?? null,
        currency: input.currency ?? "KRW",
        buyer_name: input.buyer_name ?? null,
        buyer_email: input.buyer_email ?? null,
        buyer_tel: input.buyer_tel ?? null,
        buyer_addr: input.buyer_addr ?? null,
        buyer_postcode: input.buyer_postcode ?? null,
        custom_data:
          input.custom_data === undefined
            ? null
            : typeof input.custom_data === "string"
              ? input.custom_data
              : JSON.stringify(input.custom_data),
        notice_url: input.notice_url ?? null,
        ignore_prepare: input.ignore_prepare ?? false,
        card_number: input.card_number ?? null,
        pg: input.pg ?? null,
      });
      // Approved payments and issued virtual accounts are notified; a failed window is not.
      const counts: WebhookCounts =
        p.status === "failed" ? { delivered: 0, failed: 0, dropped: 0 } : await deliver(p, "checkout");
      reply.send({ imp_uid: p.imp_uid, merchant_uid: p.merchant_uid, status: p.status, fail_reason: p.fail_reason, webhooks: counts });
    }),
  );

  router.post(
    "/vbank/deposit",
    handle(async (req, reply) => {
      const { imp_uid } = parse(impUidSchema, req.body);
      const p = state.deposit(imp_uid);
      const counts = await deliver(p, "vbank");
      reply.send({ imp_uid: p.imp_uid, merchant_uid: p.merchant_uid, status: p.status, webhooks: counts });
    }),
  );

  router.post(
    "/webhooks/redeliver",
    handle(async (req, reply) => {
      const { imp_uid, times, concurrency } = parse(redeliverSchema, req.body);
      const p = state.getPayment(imp_uid);
      if (!p) throw new ControlError(404, `no payment ${imp_uid}`);
      if (!p.notice_url && !webhooks.hasUrl()) {
        throw new ControlError(409, "no webhook URL: the payment has no notice_url and the emulator has no webhookUrl");
      }
      const jobs = Array.from({ length: times }, () => webhookJob(p, "redeliver"));
      const counts = await webhooks.deliverAll(jobs, concurrency);
      reply.send({ imp_uid: p.imp_uid, status: p.status, sent: times, webhooks: counts });
    }),
  );

  router.get("/webhooks", (_req, reply) => {
    reply.send({ webhooks: webhooks.log() });
  });

  router.delete("/webhooks", (_req, reply) => {
    webhooks.clearLog();
    reply.send({ cleared: true });
  });

  router.get("/faults", (_req, reply) => {
    reply.send({ faults: faults.list() });
  });

  router.post(
    "/faults",
    handle((req, reply) => {
      const { route, mode, times } = parse(faultSchema, req.body);
      if (times === 0) {
        // "The next 0 calls misbehave": withdraw what is pending for that route and mode.
        const cancelled = faults.cancel(route, mode);
        reply.send({ cancelled, faults: faults.list() });
        return;
      }
      const fault = faults.add(route, mode, times);
      reply.code(201).send({ fault: { id: fault.id, route: fault.route, mode: fault.mode, remaining: fault.remaining }, faults: faults.list() });
    }),
  );

  router.get("/faults/held", (_req, reply) => {
    reply.send({ held: deps.held() });
  });

  router.post(
    "/faults/release",
    handle((req, reply) => {
      const { id } = parse(releaseSchema, req.body ?? {});
      reply.send({ released: deps.release(id) });
    }),
  );

  router.delete("/faults", (_req, reply) => {
    faults.clear();
    reply.send({ faults: [] });
  });

  router.post("/reset", (_req, reply) => {
    deps.reset();
    reply.send({ now: clock.now() });
  });

  // Receipt links in payments point here, so they open something real.
  router.get("/receipts/:imp_uid", (req, reply) => {
    const p = state.getPayment((req.params as { imp_uid: string }).imp_uid);
    if (!p) {
      reply.code(404).send({ error: "no such payment" });
      return;
    }
    reply.send({ receipt: paymentToWire(p) });
  });

  router.all("/*", (req, reply) => {
    const path = req.url.split("?")[0].replace(/^\/__emulator/i, "");
    reply.code(404).send({ error: `no control route ${req.method} /__emulator${path}` });
  });
}
