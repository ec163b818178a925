import { pgTime } from "../../src/db/sql";

describe("pgTime (timestamptz text from the ORM's connections)", () => {
  it.each([
    ["2026-11-21 15:46:12.577+00", "2026-11-21T15:46:12.577Z"],
    ["2026-11-21 15:46:12.5779+00", "2026-11-21T15:46:12.577Z"],
    ["2026-11-21 15:46:12.05+00", "2026-11-21T15:46:12.050Z"],
    ["2026-11-21 15:46:12+00", "2026-11-21T15:46:12.000Z"],
    ["2024-02-29 23:59:59.999999+00", "2024-02-29T23:59:59.999Z"],
    ["2026-11-21 15:46:12.577+09", "2026-11-21T06:46:12.577Z"],
    ["2026-11-21 15:46:12+05:30", "2026-11-21T10:16:12.000Z"],
  ])("reads %s", (text, iso) => {
    expect(pgTime(text)!.toISOString()).toBe(iso);
  });

  it("passes Dates and null through and refuses what is not a timestamp", () => {
    const d = new Date();
    expect(pgTime(d)).toBe(d);
    expect(pgTime(null)).toBeNull();
    expect(() => pgTime("yesterday")).toThrow(/unreadable timestamp/);
  });
});
