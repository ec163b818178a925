import fs from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import { ENV_VARIABLES, loadConfig } from "../../src/config";

const root = path.resolve(__dirname, "../..");
const compose = parse(fs.readFileSync(path.join(root, "docker-compose.yml"), "utf8"));

/** Replaces ${VAR:?msg} / ${VAR:-default} with a sample value, as docker compose would with the variable set. */
function interpolate(value: string): string {
  return value.replace(/\$\{([A-Z_]+)(:[?-][^}]*)?\}/g, (_m, name: string, rest?: string) => {
    if (rest?.startsWith(":-")) return rest.slice(2);
    return name === "PUBLIC_URL" ? "https://billing.example.com" : `sample-${name.toLowerCase()}-0123456789abcdef0123456789abcdef`;
  });
}

describe("docker-compose.yml", () => {
  it("has PostgreSQL and the API built from the Dockerfile", () => {
    expect(Object.keys(compose.services).sort()).toEqual(["api", "postgres"]);
    expect(compose.services.api.build).toBe(".");
    expect(fs.existsSync(path.join(root, "Dockerfile"))).toBe(true);
    expect(compose.services.api.depends_on.postgres.condition).toBe("service_healthy");
  });

  it("gives the API an environment that the config schema accepts in production", () => {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(compose.services.api.environment as Record<string, string>)) env[k] = interpolate(String(v));
    const config = loadConfig(env);
    expect(config.env).toBe("production");
    expect(config.iamport.useEmulator).toBe(false);
    expect(config.port).toBe(4000);
    // The API reaches the postgres service by its name, with its credentials and database.
    const db = new URL(config.databaseUrl!);
    const pg = compose.services.postgres.environment;
    expect(db.hostname).toBe("postgres");
    expect(db.username).toBe(pg.POSTGRES_USER);
    expect(db.password).toBe(pg.POSTGRES_PASSWORD);
    expect(db.pathname).toBe(`/${pg.POSTGRES_DB}`);
  });

  it("publishes the API port it listens on and checks readiness", () => {
    expect(compose.services.api.ports).toContain(`${loadConfig({}).port}:4000`);
    expect(compose.services.api.healthcheck.test.join(" ")).toContain("/readyz");
  });

  it("names only variables the config schema knows", () => {
    for (const k of Object.keys(compose.services.api.environment)) expect(ENV_VARIABLES).toContain(k);
  });
});
