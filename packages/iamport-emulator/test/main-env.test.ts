import { readEmulatorEnv } from "../src/main";

describe("emulator standalone: environment", () => {
  it("uses the documented defaults", () => {
    expect(readEmulatorEnv({})).toEqual({
      IAMPORT_EMULATOR_PORT: 4010,
      IAMPORT_EMULATOR_HOST: "127.0.0.1",
      IAMPORT_EMULATOR_API_KEY: "imp_apikey",
      IAMPORT_EMULATOR_API_SECRET: "emulator_secret",
      IAMPORT_EMULATOR_WEBHOOK_URL: undefined,
      IAMPORT_EMULATOR_WEBHOOK_CONCURRENCY: 16,
      IAMPORT_EMULATOR_WEBHOOK_CONTENT_TYPE: "json",
      IAMPORT_EMULATOR_WEBHOOK_RETRIES: 0,
      IAMPORT_EMULATOR_LATENCY_MS: 0,
      IAMPORT_EMULATOR_V2_WEBHOOK_URL: undefined,
      PORTONE_EMULATOR_PORT: 4011,
      PORTONE_EMULATOR_API_SECRET: "portone_emulator_secret",
      PORTONE_EMULATOR_STORE_ID: "store-emulator",
      PORTONE_EMULATOR_CHANNEL_KEY: "channel-key-emulator",
      PORTONE_EMULATOR_WEBHOOK_SECRET: undefined,
    });
  });

  it("reads the V2 variables, and PORTONE_EMULATOR_PORT=off", () => {
    const secret = `whsec_${Buffer.alloc(24, 7).toString("base64")}`;
    expect(
      readEmulatorEnv({
        PORTONE_EMULATOR_PORT: "5011",
        PORTONE_EMULATOR_WEBHOOK_SECRET: secret,
        IAMPORT_EMULATOR_V2_WEBHOOK_URL: "http://localhost:4000/portone-webhook",
      }),
    ).toMatchObject({ PORTONE_EMULATOR_PORT: 5011, PORTONE_EMULATOR_WEBHOOK_SECRET: secret, IAMPORT_EMULATOR_V2_WEBHOOK_URL: "http://localhost:4000/portone-webhook" });
    expect(readEmulatorEnv({ PORTONE_EMULATOR_PORT: "off" }).PORTONE_EMULATOR_PORT).toBe("off");
  });

  it("parses every variable, treating empty ones as unset", () => {
    const env = readEmulatorEnv({
      IAMPORT_EMULATOR_PORT: "5010",
      IAMPORT_EMULATOR_API_KEY: "k",
      IAMPORT_EMULATOR_API_SECRET: "s",
      IAMPORT_EMULATOR_WEBHOOK_URL: "http://localhost:4000/iamport-webhook",
      IAMPORT_EMULATOR_WEBHOOK_CONCURRENCY: "4",
      IAMPORT_EMULATOR_WEBHOOK_CONTENT_TYPE: "form",
      IAMPORT_EMULATOR_WEBHOOK_RETRIES: "5",
      IAMPORT_EMULATOR_LATENCY_MS: "",
      IAMPORT_EMULATOR_STATE_FILE: "./.data/emulator.json",
      UNRELATED: "x",
    });
    expect(env).toMatchObject({
      IAMPORT_EMULATOR_PORT: 5010,
      IAMPORT_EMULATOR_API_KEY: "k",
      IAMPORT_EMULATOR_WEBHOOK_URL: "http://localhost:4000/iamport-webhook",
      IAMPORT_EMULATOR_WEBHOOK_CONCURRENCY: 4,
      IAMPORT_EMULATOR_WEBHOOK_CONTENT_TYPE: "form",
      IAMPORT_EMULATOR_WEBHOOK_RETRIES: 5,
      IAMPORT_EMULATOR_LATENCY_MS: 0,
      IAMPORT_EMULATOR_STATE_FILE: "./.data/emulator.json",
    });
  });

  it.each([
    ["IAMPORT_EMULATOR_PORT", "eighty"],
    ["IAMPORT_EMULATOR_PORT", "70000"],
    ["IAMPORT_EMULATOR_WEBHOOK_URL", "not a url"],
    ["IAMPORT_EMULATOR_WEBHOOK_URL", "ftp://example.com/hook"],
    ["IAMPORT_EMULATOR_WEBHOOK_CONCURRENCY", "0"],
    ["IAMPORT_EMULATOR_WEBHOOK_CONTENT_TYPE", "xml"],
    ["IAMPORT_EMULATOR_WEBHOOK_RETRIES", "-1"],
    ["IAMPORT_EMULATOR_LATENCY_MS", "1.5"],
    ["PORTONE_EMULATOR_PORT", "on"],
    ["PORTONE_EMULATOR_WEBHOOK_SECRET", "not-a-secret"],
    ["PORTONE_EMULATOR_WEBHOOK_SECRET", "whsec_c2hvcnQ="],
    ["IAMPORT_EMULATOR_V2_WEBHOOK_URL", "nope"],
  ])("rejects %s=%s with one line naming the variable", (name, value) => {
    let message = "";
    try {
      readEmulatorEnv({ [name]: value });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain(name);
    expect(message).not.toContain("\n");
  });
});
