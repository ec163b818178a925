import fs from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import { ConfigError, configWarnings, ENV_VARIABLES, loadConfig } from "../../src/config";

const root = path.resolve(__dirname, "../..");
type Services = Record<string, { profiles?: string[]; environment: Record<string, string>; ports?: string[]; [k: string]: unknown }>;
const read = (file: string) => fs.readFileSync(path.join(root, file), "utf8");
/** docker-compose.yml: what a bare `docker compose up` starts (production, the real Iamport). */
const services = parse(read("docker-compose.yml")).services as Services;
/** docker-compose.demo.yml: the same API against the emulator, without keys. */
const demo = parse(read("docker-compose.demo.yml")).services as Services;

/** Replaces ${VAR:-default} as docker compose would, with `vars` holding what is set in the shell or .env. */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\{([A-Z_]+)(:[?-][^}]*)?\}/g, (_m, name: string, rest?: string) => {
    if (vars[name] !== undefined) return vars[name];
    if (rest?.startsWith(":-")) return rest.slice(2);
    throw new Error(`\${${name}} is required by docker-compose.yml`);
  });
}

function envOf(service: string, vars: Record<string, string> = {}, file: Services = services): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(file[service].environment)) env[k] = interpolate(String(v), vars);
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

describe("docker-compose.yml", () => {
  it("starts PostgreSQL and the API on a bare `docker compose up`; the demo file adds the emulator instead of keys", () => {
    // No profiles: `docker compose up` starts exactly these (a service in a profile would need --profile).
    expect(Object.keys(services).sort()).toEqual(["api", "postgres"]);
    expect(Object.keys(demo).sort()).toEqual(["api", "emulator", "postgres"]);
    for (const s of [...Object.values(services), ...Object.values(demo)]) expect(s.profiles).toBeUndefined();
    expect(services.api.build).toBe(".");
    expect(demo.api.build).toBe(".");
    expect((demo.emulator.build as { target: string }).target).toBe("emulator");
    expect(fs.readFileSync(path.join(root, "Dockerfile"), "utf8")).toMatch(/^FROM .* AS emulator$/m);
    expect(fs.existsSync(path.join(root, "Dockerfile"))).toBe(true);
    expect((services.api.depends_on as Record<string, { condition: string }>).postgres.condition).toBe("service_healthy");
  });

  it("requires no variable to parse: a missing one is reported by the API itself, all at once", () => {
    // No ${VAR:?...}: docker compose would refuse the whole file for it instead of the API naming them all.
    expect(read("docker-compose.yml")).not.toMatch(/\$\{[A-Z_]+:\?/);
    expect(read("docker-compose.demo.yml")).not.toMatch(/\$\{[A-Z_]+:\?/);
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
    const config = loadConfig(envOf("api", {}, demo));
    expect(config.iamport.useEmulator).toBe(true);
    const emulatorUrl = new URL(config.iamport.apiUrl!);
    expect(emulatorUrl.hostname).toBe("emulator");
    expect(emulatorUrl.port).toBe(demo.emulator.environment.IAMPORT_EMULATOR_PORT);
    // Reachable from the other containers, and its webhooks reach the demo API.
    expect(demo.emulator.environment.IAMPORT_EMULATOR_HOST).toBe("0.0.0.0");
    expect(new URL(demo.emulator.environment.IAMPORT_EMULATOR_WEBHOOK_URL).hostname).toBe("api");
    expect(new URL(config.publicUrl).hostname).toBe("api");
    expect(config.apiKeys).toEqual(["demo-key"]);
    expect(config.graphiqlEnabled).toBe(true);
    expect(new URL(config.databaseUrl!).hostname).toBe("postgres");
    // Its ports only on this machine: the control API moves the clock and the demo key is public.
    expect(demo.api.ports).toEqual(["127.0.0.1:4000:4000"]);
    expect(demo.emulator.ports).toEqual(["127.0.0.1:4010:4010"]);
  });

  it("publishes the API port it listens on, never PostgreSQL's, and checks readiness", () => {
    expect(services.api.ports).toContain(`${loadConfig({}).port}:4000`);
    expect(services.postgres.ports).toBeUndefined();
    expect(demo.postgres.ports).toBeUndefined();
    expect((services.api.healthcheck as { test: string[] }).test.join(" ")).toContain("/readyz");
  });

  it("names only variables the config schema knows", () => {
    for (const file of [services, demo]) for (const k of Object.keys(file.api.environment)) expect(ENV_VARIABLES).toContain(k);
  });
});
