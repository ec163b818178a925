import { Harness, registerCard, TEST_CARDS, uid } from "../support/harness";
import { cancelSub, emulatorPaymentCount, START, startSub, startSubHarness } from "./helpers";

let h: Harness;
beforeAll(async () => {
  h = await startSubHarness();
});
afterAll(async () => {
  await h?.close();
});

const plan = (customerUid: string, extra: Record<string, unknown> = {}) => ({ input: { customerUid, name: "Pro monthly", amount: 9900, interval: "MONTH", ...extra } });

type StartResult = { startSubscription: { id: string; status: string } };

async function liveSubscriptions(customerUid: string): Promise<string[]> {
  const rows = await h.sql<{ id: string }>(
    `select id from subscriptions where customer_uid = ? and status in ('INCOMPLETE', 'ACTIVE', 'PAST_DUE') order by id`,
    [customerUid],
  );
  return rows.map((r) => r.id);
}

describe("a second live subscription of the same name", () => {
  it("of two concurrent starts without a key, one succeeds and the other is CONFLICT naming it; one charge", async () => {
    const c = await registerCard(h, uid("c"));
    const before = await emulatorPaymentCount(h);
    const answers = await Promise.all([h.gql<StartResult>(START, plan(c)), h.gql<StartResult>(START, plan(c))]);

    const ok = answers.filter((a) => !a.errors);
    const refused = answers.filter((a) => a.errors);
    expect(ok).toHaveLength(1);
    expect(refused).toHaveLength(1);
    const id = ok[0].data!.startSubscription.id;
    expect(ok[0].data!.startSubscription.status).toBe("ACTIVE");
    expect(refused[0].errors![0].extensions).toMatchObject({ code: "CONFLICT", subscriptionId: id });
    expect(refused[0].errors![0].message).toContain(id);
    expect((await emulatorPaymentCount(h)) - before).toBe(1);
    expect(await liveSubscriptions(c)).toEqual([id]);
  });

  it("is refused while the first is live and allowed once it is canceled; other names are independent", async () => {
    const c = await registerCard(h, uid("c"));
    const first = await startSub(h, { customerUid: c, name: "Pro monthly" });
    const charges = await emulatorPaymentCount(h);

    const refused = await h.gql(START, plan(c));
    expect(refused.errors?.[0].extensions).toMatchObject({ code: "CONFLICT", subscriptionId: first.id });
    expect(await emulatorPaymentCount(h)).toBe(charges);

    const other = await h.gql<StartResult>(START, plan(c, { name: "Storage add-on" }));
    expect(other.errors).toBeUndefined();

    await cancelSub(h, first.id);
    const again = await h.gql<StartResult>(START, plan(c));
    expect(again.errors).toBeUndefined();
    expect(again.data!.startSubscription.id).not.toBe(first.id);
  });

  it("does not count a subscription whose first charge was declined", async () => {
    const c = await registerCard(h, uid("c"), TEST_CARDS.declined);
    const declined = await startSub(h, { customerUid: c, name: "Pro monthly" });
    expect(declined.status).toBe("CANCELED");
    const again = await h.gql<StartResult>(START, plan(c));
    expect(again.errors).toBeUndefined();
  });

  it("is allowed with allowDuplicate: two concurrent starts make two subscriptions and two charges", async () => {
    const c = await registerCard(h, uid("c"));
    const before = await emulatorPaymentCount(h);
    const answers = await Promise.all([
      h.gql<StartResult>(START, plan(c, { allowDuplicate: true })),
      h.gql<StartResult>(START, plan(c, { allowDuplicate: true })),
    ]);
    expect(answers.map((a) => a.errors)).toEqual([undefined, undefined]);
    expect((await emulatorPaymentCount(h)) - before).toBe(2);
    expect(await liveSubscriptions(c)).toHaveLength(2);
  });

  it("refuses a start without allowDuplicate while a live one of that name exists, even one that allowed duplicates", async () => {
    const c = await registerCard(h, uid("c"));
    const dup = await h.gql<StartResult>(START, plan(c, { allowDuplicate: true }));
    expect(dup.errors).toBeUndefined();
    const plain = await h.gql(START, plan(c));
    expect(plain.errors?.[0].extensions).toMatchObject({ code: "CONFLICT", subscriptionId: dup.data!.startSubscription.id });
  });

  it("refuses it before anything reaches Iamport for a subscription started later (startAt)", async () => {
    const c = await registerCard(h, uid("c"));
    const startAt = new Date(Date.now() + 7 * 86400_000).toISOString();
    const first = await h.gql<StartResult>(START, plan(c, { startAt }));
    expect(first.errors).toBeUndefined();
    const schedules = await h.sql<{ n: number }>(`select count(*)::int as n from payments where customer_uid = ?`, [c]);
    const refused = await h.gql(START, plan(c, { startAt }));
    expect(refused.errors?.[0].extensions).toMatchObject({ code: "CONFLICT", subscriptionId: first.data!.startSubscription.id });
    expect(await h.sql<{ n: number }>(`select count(*)::int as n from payments where customer_uid = ?`, [c])).toEqual(schedules);
  });

  it("migrates a database that already holds live duplicates: the oldest keeps the name, the others run on as allowDuplicate", async () => {
    const c = await registerCard(h, uid("c"));
    const migrator = h.server.orm.getMigrator();
    await migrator.down("Migration20261207004000_idempotency");
    try {
      // As the server made them before the rule: three live "Legacy" subscriptions and a canceled one.
      const legacy = [
        ["0", "CANCELED", "2025-12-01T00:00:00Z"],
        ["1", "ACTIVE", "2026-01-01T00:00:00Z"],
        ["2", "PAST_DUE", "2026-02-01T00:00:00Z"],
        ["3", "INCOMPLETE", "2026-03-01T00:00:00Z"],
      ];
      for (const [n, status, at] of legacy) {
        await h.sql(
          `insert into subscriptions (id, customer_uid, name, amount, interval, anchor_at, status, created_at, updated_at)
           values (?, ?, 'Legacy', 9900, 'MONTH', ?, ?, ?, ?)`,
          [`s_${c}_${n}`.slice(0, 24), c, at, status, at, at],
        );
      }
    } finally {
      await migrator.up();
    }
    const rows = await h.sql<{ id: string; allow_duplicate: boolean }>(`select id, allow_duplicate from subscriptions where customer_uid = ? order by created_at`, [c]);
    expect(rows.map((r) => r.allow_duplicate)).toEqual([false, false, true, true]);

    const refused = await h.gql(START, plan(c, { name: "Legacy" }));
    expect(refused.errors?.[0].extensions).toMatchObject({ code: "CONFLICT", subscriptionId: rows[1].id });
  });

  it("counts a PAUSED subscription as live; migrating, a paused one already sharing its name runs on as allowDuplicate", async () => {
    const c = await registerCard(h, uid("c"));
    const migrator = h.server.orm.getMigrator();
    const insert = (n: string, status: string, allowDuplicate = false) =>
      h.sql(
        `insert into subscriptions (id, customer_uid, name, amount, interval, anchor_at, status, allow_duplicate, created_at, updated_at)
         values (?, ?, 'Paused', 9900, 'MONTH', now(), ?, ?, now(), now())`,
        [`s_${c}_${n}`.slice(0, 24), c, status, allowDuplicate],
      );
    await migrator.down("Migration20261207100000_paused_live");
    try {
      // As the server let them be before PAUSED counted: an ACTIVE and a PAUSED subscription of one name.
      await insert("a", "ACTIVE");
      await insert("p", "PAUSED");
    } finally {
      await migrator.up();
    }
    const rows = await h.sql<{ status: string; allow_duplicate: boolean }>(`select status, allow_duplicate from subscriptions where customer_uid = ? order by status`, [c]);
    expect(rows.map((r) => [r.status, r.allow_duplicate])).toEqual([
      ["ACTIVE", false],
      ["PAUSED", true],
    ]);
    // The index now holds PAUSED rows to the name too: a second one without allowDuplicate cannot be written.
    await expect(insert("q", "PAUSED")).rejects.toThrow(/subscriptions_live_name_unique/);
    await insert("r", "PAUSED", true);
  });
});
