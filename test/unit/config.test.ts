import { ConfigError, describeSecrets, loadConfig, parseDurationList } from "../../src/config";

describe("loadConfig", () => {
  it("gives the documented defaults with an empty environment", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      env: "development",
      port: 4000,
      databaseUrl: undefined,
      billingTimeZone: "Asia/Seoul",
      retryScheduleSeconds: [86400, 3 * 86400, 5 * 86400],
      migrateOnStart: true,
      reconcileIntervalSeconds: 60,
      publicUrl: "http://localhost:4000",
      apiKeys: [],
    });
    expect(c.iamport.useEmulator).toBe(true);
    expect(c.emulator).toMatchObject({ port: 4010, apiKey: "imp_apikey", apiSecret: "emulator_secret" });
  });

  it("reads the in-process emulator's state file; unset leaves the choice to the server", () => {
    expect(loadConfig({}).emulator.stateFile).toBeUndefined();
    expect(loadConfig({ IAMPORT_EMULATOR_STATE_FILE: " /srv/dev/emulator.json " }).emulator.stateFile).toBe("/srv/dev/emulator.json");
  });

  it("uses the real Iamport when a key and secret are set", () => {
    const c = loadConfig({ IAMPORT_API_KEY: "k", IAMPORT_API_SECRET: "s" });
    expect(c.iamport).toMatchObject({ useEmulator: false, apiUrl: "https://api.iamport.kr" });
  });

  describe("the provider: Iamport V1 or PortOne V2", () => {
    const V1 = { IAMPORT_API_KEY: "k", IAMPORT_API_SECRET: "s" };
    const V2 = { PORTONE_API_SECRET: "secret", PORTONE_CHANNEL_KEY: "channel-key", PORTONE_WEBHOOK_SECRET: "whsec_c2VjcmV0", PORTONE_STORE_ID: "store-1" };

    it("is V1 by default, and V2 when only PortOne V2's credentials are set", () => {
      expect(loadConfig({}).provider).toBe("v1");
      expect(loadConfig(V1).provider).toBe("v1");
      const c = loadConfig(V2);
      expect(c.provider).toBe("v2");
      expect(c.portone).toMatchObject({ useEmulator: false, apiUrl: "https://api.portone.io", storeId: "store-1", channelKey: "channel-key" });
    });

    it("PAYMENT_PROVIDER=v2 without credentials is the emulator's V2 on PORTONE_EMULATOR_PORT", () => {
      const c = loadConfig({ PAYMENT_PROVIDER: "v2" });
      expect(c).toMatchObject({ provider: "v2", portone: { useEmulator: true, apiUrl: undefined }, emulator: { v2Port: 4011 } });
    });

    it("refuses both providers' credentials with one line, unless migrating from V1 to V2", () => {
      expect(() => loadConfig({ ...V1, ...V2 })).toThrow(/^Invalid configuration: PORTONE_API_SECRET and IAMPORT_API_KEY are both set: choose one provider/);
      const m = loadConfig({ ...V1, ...V2, PAYMENT_PROVIDER_MIGRATION: "v1_to_v2" });
      // The server keeps charging through V1 until it is switched (npm run migrate:v2 moves the pending charges).
      expect(m).toMatchObject({ provider: "v1", migration: "v1_to_v2", iamport: { useEmulator: false }, portone: { useEmulator: false } });
    });

    it.each([
      [{ PORTONE_API_SECRET: "secret", PORTONE_WEBHOOK_SECRET: "whsec_c2VjcmV0" }, "PORTONE_CHANNEL_KEY"],
      [{ PORTONE_API_SECRET: "secret", PORTONE_CHANNEL_KEY: "c" }, "PORTONE_WEBHOOK_SECRET"],
      [{ ...V2, PORTONE_WEBHOOK_SECRET: "plain" }, "PORTONE_WEBHOOK_SECRET"],
      [{ PAYMENT_PROVIDER_MIGRATION: "v1_to_v2", ...V2 }, "PAYMENT_PROVIDER_MIGRATION"],
      [{ PAYMENT_PROVIDER: "v2", ...V1 }, "PAYMENT_PROVIDER"],
      [{ PAYMENT_PROVIDER: "v3" }, "PAYMENT_PROVIDER"],
    ])("stops on %p naming %s", (env, variable) => {
      expect(() => loadConfig(env)).toThrow(ConfigError);
      try {
        loadConfig(env);
      } catch (e) {
        expect((e as ConfigError).problems.map((p) => p.variable)).toContain(variable);
      }
    });

    it("production accepts PortOne V2's credentials instead of Iamport's", () => {
      const c = loadConfig({ NODE_ENV: "production", API_KEYS: "a", CUSTOMER_TOKEN_SECRET: "x".repeat(32), ...V2 });
      expect(c.provider).toBe("v2");
      expect(describeSecrets(c)).toMatchObject({ PORTONE_API_SECRET: "set", PORTONE_WEBHOOK_SECRET: "set" });
    });
  });

  it.each([
    [{ PORT: "abc" }, "PORT"],
    [{ PORT: "70000" }, "PORT"],
    [{ DATABASE_URL: "not a url" }, "DATABASE_URL"],
    [{ BILLING_TIME_ZONE: "Mars/Olympus" }, "BILLING_TIME_ZONE"],
    [{ RETRY_SCHEDULE: "1d,soon" }, "RETRY_SCHEDULE"],
    [{ MIGRATE_ON_START: "maybe" }, "MIGRATE_ON_START"],
    [{ IAMPORT_API_KEY: "k" }, "IAMPORT_API_SECRET"],
    [{ NODE_ENV: "production", IAMPORT_API_KEY: "k", IAMPORT_API_SECRET: "s" }, "API_KEYS"],
    [{ NODE_ENV: "production", API_KEYS: "a" }, "IAMPORT_API_KEY"],
  ])("stops on %p with an error naming %s", (env, variable) => {
    let err: unknown;
    try {
      loadConfig(env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe(variable);
    expect((err as Error).message).toContain(variable);
  });

  it("parses API_KEYS and never describes secret values", () => {
    const c = loadConfig({ API_KEYS: " a1 , sha256:" + "ab".repeat(32) + " ", IAMPORT_API_KEY: "k", IAMPORT_API_SECRET: "very-secret" });
    expect(c.apiKeys).toEqual(["a1", "sha256:" + "ab".repeat(32)]);
    const described = JSON.stringify(describeSecrets(c));
    expect(described).not.toContain("very-secret");
    expect(described).not.toContain("a1");
  });
});

describe("parseDurationList", () => {
  it("reads units", () => {
    expect(parseDurationList("45s, 30m,12h,1d,2w")).toEqual([45, 1800, 43200, 86400, 1209600]);
  });
  it("refuses zero and unknown units", () => {
    expect(() => parseDurationList("0d")).toThrow();
    expect(() => parseDurationList("3 days")).toThrow();
  });
});

describe("loadConfig reports every problem at once", () => {
  it("names each invalid or missing variable in one error and one line", () => {
    let err: ConfigError | undefined;
    try {
      loadConfig({ NODE_ENV: "production", PORT: "abc", RETRY_SCHEDULE: "soon" });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.problems.map((p) => p.variable)).toEqual(["PORT", "RETRY_SCHEDULE", "API_KEYS", "IAMPORT_API_KEY", "CUSTOMER_TOKEN_SECRET"]);
    expect(err!.variable).toBe("PORT");
    expect(err!.message).not.toContain("\n");
    for (const v of ["PORT", "RETRY_SCHEDULE", "API_KEYS", "IAMPORT_API_KEY", "CUSTOMER_TOKEN_SECRET"]) expect(err!.message).toContain(v);
  });

  it("refuses an empty PGLITE_DATA_DIR with the other problems, and keeps the default when it is unset", () => {
    let err: ConfigError | undefined;
    try {
      loadConfig({ PGLITE_DATA_DIR: "  ", PORT: "abc" });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.problems.map((p) => p.variable)).toEqual(["PORT", "PGLITE_DATA_DIR"]);
    expect(err!.message).toContain("PGLITE_DATA_DIR must not be empty");
    expect(loadConfig({}).pgliteDataDir).toBe("./.data/pglite");
    expect(loadConfig({ PGLITE_DATA_DIR: " /var/lib/billing " }).pgliteDataDir).toBe("/var/lib/billing");
  });
});
