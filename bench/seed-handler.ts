/**
 * The reference of the renewal benchmark: the schedule webhook handler of
 * Iamport's own guide ("정기결제 - 결제 예약"), written plainly. For every
 * webhook it asks for a token, re-queries GET /payments/{imp_uid}, updates the
 * customer's row in its own table and schedules what comes next: the next
 * period when the charge was paid, a retry of the same period (after
 * RETRY_DELAY_SECONDS) when it was declined. No dedupe, no locking, no inbox, no
 * retry bookkeeping beyond the next order: the least a correct-looking handler
 * does, and so the speed the server is compared with. The same handler serves
 * every case of the bench (a renewal, a first charge scheduled for later, a
 * declined renewal, a webhook delivered again): the guide writes one handler.
 *
 * Orders are named `<customer_uid>_p<period>_a<attempt>`, so the handler learns
 * the period and attempt from Iamport's answer alone.
 *
 * Env: PORT, DATABASE_URL, DATABASE_POOL_MAX (10), IAMPORT_API_URL,
 * IAMPORT_API_KEY, IAMPORT_API_SECRET, NOTICE_URL (this handler's URL), PERIOD_SECONDS,
 * RETRY_DELAY_SECONDS. The table `seed_subscriptions` is created by the benchmark.
 */
import axios from "axios";
import express from "express";
import { Pool } from "pg";

const IAMPORT = process.env.IAMPORT_API_URL!;
const imp_key = process.env.IAMPORT_API_KEY ?? "imp_apikey";
const imp_secret = process.env.IAMPORT_API_SECRET ?? "emulator_secret";
const noticeUrl = process.env.NOTICE_URL!;
const periodSeconds = Number(process.env.PERIOD_SECONDS ?? 86400);
const retryDelaySeconds = Number(process.env.RETRY_DELAY_SECONDS ?? 86400);
const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DATABASE_POOL_MAX ?? 10) });
pool.on("error", (e) => console.error(`idle database connection lost: ${e.message}`));

const app = express();
app.use(express.json());
app.use(express.urlencoded({ extended: true }));

app.get("/healthz", (_req, res) => {
  res.json({ status: "ok" });
});

app.post("/iamport-callback/schedule", async (req, res) => {
  try {
    const { imp_uid } = req.body as { imp_uid: string; merchant_uid: string };
    // 1. An access token (the guide asks for one in every handler).
    const getToken = await axios.post(`${IAMPORT}/users/getToken`, { imp_key, imp_secret }, { headers: { "Content-Type": "application/json" } });
    const { access_token } = getToken.data.response;
    // 2. The payment as Iamport has it (the webhook body is not trusted).
    const getPaymentData = await axios.get(`${IAMPORT}/payments/${imp_uid}`, { headers: { Authorization: access_token } });
    const paymentData = getPaymentData.data.response;
    const { status, customer_uid, merchant_uid, amount, name, paid_at, failed_at } = paymentData;
    const [, p, a] = /_p(\d+)_a(\d+)$/.exec(merchant_uid) ?? ["", "1", "1"];
    const period = Number(p);
    const attempt = Number(a);
    if (status === "paid") {
      const nextMerchantUid = `${customer_uid}_p${period + 1}_a1`;
      const nextAt = paid_at + periodSeconds;
      // 3. Record it.
      await pool.query(
        `update seed_subscriptions set period = $2, status = 'paid', imp_uid = $3, payment = $4, paid_at = to_timestamp($5),
           next_merchant_uid = $6, next_payment_at = to_timestamp($7), updated_at = now() where customer_uid = $1`,
        [customer_uid, period, imp_uid, paymentData, paid_at, nextMerchantUid, nextAt],
      );
      // 4. Schedule the next payment.
      await axios.post(
        `${IAMPORT}/subscribe/payments/schedule`,
        { customer_uid, schedules: [{ merchant_uid: nextMerchantUid, schedule_at: nextAt, amount, name, notice_url: noticeUrl }] },
        { headers: { Authorization: access_token } },
      );
      res.send({ status: "success", message: "일반 결제 성공" });
    } else {
      // 3. Record the decline; 4. schedule the same period again later.
      const retryMerchantUid = `${customer_uid}_p${period}_a${attempt + 1}`;
      const retryAt = (failed_at || Math.floor(Date.now() / 1000)) + retryDelaySeconds;
      await pool.query(
        `update seed_subscriptions set status = $2, payment = $3, next_merchant_uid = $4, next_payment_at = to_timestamp($5), updated_at = now()
          where customer_uid = $1`,
        [customer_uid, status, paymentData, retryMerchantUid, retryAt],
      );
      await axios.post(
        `${IAMPORT}/subscribe/payments/schedule`,
        { customer_uid, schedules: [{ merchant_uid: retryMerchantUid, schedule_at: retryAt, amount, name, notice_url: noticeUrl }] },
        { headers: { Authorization: access_token } },
      );
      res.send({ status: "failed", message: "결제 실패" });
    }
  } catch (e) {
    res.status(400).send({ status: "error", message: (e as Error).message });
  }
});

const server = app.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  console.log(`READY ${JSON.stringify({ port: (server.address() as { port: number }).port })}`);
});
server.keepAliveTimeout = 65_000;

const stop = () => {
  server.close();
  server.closeAllConnections();
  void pool.end().finally(() => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
