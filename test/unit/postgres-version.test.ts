import { unsupportedPostgres } from "../../src/db/orm";

/** The server refuses to start on a PostgreSQL older than 13 (src/server.ts, checkPostgresVersion). */
describe("unsupportedPostgres", () => {
  it.each(["130000", "150020", "170004"])("accepts server_version_num %s", (v) => {
    expect(unsupportedPostgres(v)).toBeNull();
  });

  it.each(["120018", "110022", "96024"])("refuses server_version_num %s, naming the version required and the one found", (v) => {
    expect(unsupportedPostgres(v)).toBe(`PostgreSQL 13 or later is required; the database at DATABASE_URL reports server_version_num "${v}"`);
  });

  it.each(["", "undefined", "15.2"])("refuses an unreadable answer %j", (v) => {
    expect(unsupportedPostgres(v)).toMatch(/^PostgreSQL 13 or later is required/);
  });
});
