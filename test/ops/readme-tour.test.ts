import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { API_KEY, Harness, startHarness } from "../support/harness";

const run = promisify(execFile);
let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

/** A shell block of README.md between `<!-- name:start -->` and `<!-- name:end -->`, exactly as shown. */
function readmeBlock(name: string): string {
  const readme = fs.readFileSync(path.resolve(__dirname, "../../README.md"), "utf8");
  const m = new RegExp(`<!-- ${name}:start -->\\s*\`\`\`sh\\n([\\s\\S]*?)\`\`\`\\s*<!-- ${name}:end -->`).exec(readme);
  if (!m) throw new Error(`README.md has no ${name} block between <!-- ${name}:start --> and <!-- ${name}:end -->`);
  return m[1];
}

/** The tour's shell block, exactly as README.md shows it. */
function tourScript(): string {
  return readmeBlock("tour");
}

describe("the README's five-minute tour", () => {
  it("runs as written and ends with the renewal paid and the next period scheduled", async () => {
    const { stdout } = await run("bash", ["-euo", "pipefail", "-c", tourScript()], {
      env: { PATH: process.env.PATH, API: h.server.url, EMU: h.emulator.url, KEY: API_KEY },
      timeout: 60_000,
    });
    const lines = stdout
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(5);
    expect(lines[0].data.registerCard).toMatchObject({ customerUid: expect.stringMatching(/^tour_/), status: "ACTIVE" });
    expect(lines[1].data.chargeAgain).toMatchObject({ status: "PAID", paidAmount: 8900 });
    expect(lines[2].data.startSubscription).toMatchObject({ status: "ACTIVE" });
    expect(lines[3].executed).toHaveLength(1);
    const sub = lines[4].data.subscriptions.nodes[0];
    expect(sub.status).toBe("ACTIVE");
    const statuses = sub.payments.nodes.map((p: { merchantUid: string; status: string }) => `${p.merchantUid.replace(/^sub_\w+?_/, "")}:${p.status}`);
    expect(statuses).toEqual(["p3_a1:SCHEDULED", "p2_a1:PAID", "p1_a1:PAID"]);
  });

  it("with a wrong key stops at the first step, exits non-zero and prints the server's answer; the clock is not moved", async () => {
    const clock = async () => (await h.emu.get<{ now: number }>("/__emulator/clock")).data.now;
    const before = await clock();
    const failed = await run("bash", ["-c", tourScript()], {
      env: { PATH: process.env.PATH, API: h.server.url, EMU: h.emulator.url, KEY: "not-a-key" },
      timeout: 60_000,
    }).then(
      () => undefined,
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(failed).toBeDefined();
    expect(failed!.code).not.toBe(0);
    expect(failed!.stderr).toContain("UNAUTHENTICATED");
    expect(failed!.stdout.trim()).toBe("");
    // Step 4 never ran: the emulator's clock is where real time took it, not 31 days ahead.
    expect((await clock()) - before).toBeLessThan(86_400);
  });

  it("rehearses dunning as the Subscriptions section shows: PAST_DUE twice with card 3238, then ACTIVE", async () => {
    // The rehearsal uses the tour's variables and gql helper: the tour's lines up to gql's definition.
    const tour = tourScript();
    // Without the tour's opening "( set -e" (the test runs bash -e), through the "}" that closes gql.
    const preamble = tour.slice(tour.indexOf("\n") + 1, tour.indexOf("\n}\n", tour.indexOf("gql()")) + 3);
    const { stdout } = await run("bash", ["-euo", "pipefail", "-c", preamble + readmeBlock("dunning")], {
      env: { PATH: process.env.PATH, API: h.server.url, EMU: h.emulator.url, KEY: API_KEY },
      timeout: 60_000,
    });
    const lines = stdout
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(5);
    expect(lines[0].data.registerCard).toMatchObject({ status: "ACTIVE" });
    expect(lines[1].data.startSubscription).toMatchObject({ status: "ACTIVE" });
    const states = lines.slice(2).map((l) => l.data.subscriptions.nodes[0]);
    expect(states[0]).toMatchObject({ status: "PAST_DUE", statusReason: expect.stringMatching(/잔액부족.*retry 1 of 3|retry 1 of 3.*잔액부족/) });
    expect(states[1]).toMatchObject({ status: "PAST_DUE", statusReason: expect.stringMatching(/retry 2 of 3/) });
    expect(states[2]).toMatchObject({ status: "ACTIVE", statusReason: null });
  });
});
