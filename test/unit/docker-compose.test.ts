import fs from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import { ConfigError, configWarnings, ENV_VARIABLES, loadConfig } from "../../src/config";

const root = path.resolve(__dirname, "../..");
const compose = parse(fs.readFileSync(path.join(root, "docker-compose.yml"), "utf8"));
const services = compose.services as Record<string, { profiles?: string[]; environment: Record<string, string>; ports?: string[]; [k: string]: unknown }>;

/** Replaces ${VAR:-default} as docker compose would, with `vars` holding what is set in the shell or .env. */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\{([A-Z_]+)(:[?-][^}]*)?\}/g, (_m, name: string, rest?: string) => {
    if (vars[name] !== undefined) return vars[name];
    if (rest?.startsWith(":-")) return rest.slice(2);
    throw new Error(`\${${name}} is required by docker-compose.yml`);
  });
}

function envOf(service: string, vars: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(services[service].environment)) env[k] = interpolate(String(v), vars);
  return env;
}

/** Every variable .env.example lists, filled in with sample values. */
function filledEnvExample(): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of fs.readFileSync(path.join(root, ".env.example"), "utf8").split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (!m) continue;
    vars[m[1]] = m[2] !== "" ? m[2] : m[1] === "PUBLIC_URL" ? "https://billing.example.com" : `sample-${m[1].toLowerCase()}-0123456789abcdef0123456789abcdef`;
  }
  return vars;
}

const inProfile = (profile: string) =>
  Object.keys(services)
    .filter((name) => services[name].profiles?.includes(profile))
    .sort();

describe("docker-compose.yml", () => {
  it("has a production profile (PostgreSQL and the API built from the Dockerfile) and a demo profile with the emulator", () => {
    expect(inProfile("production")).toEqual(["api", "postgres"]);
    expect(inProfile("demo")).toEqual(["api-demo", "emulator", "postgres-demo"]);
    // Every service belongs to a profile: the demo never starts the production API and the reverse.
    expect(Object.keys(services).filter((n) => !services[n].profiles)).toEqual([]);
    expect(services.api.build).toBe(".");
    expect(fs.existsSync(path.join(root, "Dockerfile"))).toBe(true);
    expect((services.api.depends_on as Record<string, { condition: string }>).postgres.condition).toBe("service_healthy");
  });

  it("requires no variable to parse: a missing one is reported by the API itself, all at once", () => {
    // No ${VAR:?...}: docker compose would refuse the whole file for it, the demo profile included.
    expect(fs.readFileSync(path.join(root, "docker-compose.yml"), "utf8")).not.toMatch(/\$\{[A-Z_]+:\?/);
    const err = (() => {
      try {
        loadConfig(envOf("api"));
      } catch (e) {
        return e as ConfigError;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.problems.map((p) => p.variable).sort()).toEqual(["API_KEYS", "CUSTOMER_TOKEN_SECRET", "IAMPORT_API_KEY"]);
  });

  it("gives the API an environment the config schema accepts in production once .env.example is filled in, without warnings", () => {
    const config = loadConfig(envOf("api", filledEnvExample()));
    expect(config.env).toBe("production");
    expect(config.iamport.useEmulator).toBe(false);
    expect(config.port).toBe(4000);
    expect(configWarnings(config)).toEqual([]);
    // The API reaches the postgres service by its name, with its credentials and database.
    const db = new URL(config.databaseUrl!);
    const pg = services.postgres.environment;
    expect(db.hostname).toBe("postgres");
    expect(db.username).toBe(pg.POSTGRES_USER);
    expect(db.password).toBe(pg.POSTGRES_PASSWORD);
    expect(db.pathname).toBe(`/${pg.POSTGRES_DB}`);
  });

  it(".env.example lists every variable the production API takes from the environment", () => {
    const listed = Object.keys(filledEnvExample()).sort();
    const taken = Object.entries(services.api.environment)
      .filter(([, v]) => String(v).includes("${"))
      .map(([k]) => k)
      .sort();
    expect(listed).toEqual(taken);
  });

  it("warns at start when PUBLIC_URL is left to a loopback address in production", () => {
    const vars = filledEnvExample();
    delete vars.PUBLIC_URL;
    const unset = configWarnings(loadConfig(envOf("api", vars)));
    expect(unset.map((w) => w.variable)).toEqual(["PUBLIC_URL"]);
    expect(unset[0].message).toContain("http://localhost:4000");
    for (const loopback of ["http://localhost:4000", "http://127.0.0.1:4000", "http://[::1]:4000"]) {
      expect(configWarnings(loadConfig(envOf("api", { ...vars, PUBLIC_URL: loopback }))).map((w) => w.variable)).toEqual(["PUBLIC_URL"]);
    }
  });

  it("runs the demo without any key: the API against the emulator service, GraphiQL on", () => {
    const config = loadConfig(envOf("api-demo"));
    expect(config.iamport.useEmulator).toBe(true);
    const emulatorUrl = new URL(config.iamport.apiUrl!);
    expect(emulatorUrl.hostname).toBe("emulator");
    expect(emulatorUrl.port).toBe(services.emulator.environment.IAMPORT_EMULATOR_PORT);
    // Reachable from the other containers, and its webhooks reach the demo API.
    expect(services.emulator.environment.IAMPORT_EMULATOR_HOST).toBe("0.0.0.0");
    expect(new URL(services.emulator.environment.IAMPORT_EMULATOR_WEBHOOK_URL).hostname).toBe("api-demo");
    expect(new URL(config.publicUrl).hostname).toBe("api-demo");
    expect(config.apiKeys).toEqual(["demo-key"]);
    expect(config.graphiqlEnabled).toBe(true);
    expect(new URL(config.databaseUrl!).hostname).toBe("postgres-demo");
  });

  it("publishes the API port it listens on, never PostgreSQL's, and checks readiness", () => {
    expect(services.api.ports).toContain(`${loadConfig({}).port}:4000`);
    expect(services.postgres.ports).toBeUndefined();
    expect(services["postgres-demo"].ports).toBeUndefined();
    expect((services.api.healthcheck as { test: string[] }).test.join(" ")).toContain("/readyz");
  });

  it("names only variables the config schema knows", () => {
    for (const name of ["api", "api-demo"]) for (const k of Object.keys(services[name].environment)) expect(ENV_VARIABLES).toContain(k);
  });
});
