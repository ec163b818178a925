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
    });
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
