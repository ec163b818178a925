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
    // The fast path reads by position: a non-digit anywhere sends the text to the general parser, which refuses it.
    expect(() => pgTime("2026-1x-21 15:46:12+00")).toThrow(/unreadable timestamp/);
    expect(() => pgTime("2026-11-21 15:46:1x.577+00")).toThrow(/unreadable timestamp/);
    expect(() => pgTime("2026-11-21 15:46:12.5x7+00")).toThrow(/unreadable timestamp/);
    expect(() => pgTime("2026-11-21 15:46:12.+00")).toThrow(/unreadable timestamp/);
    expect(() => pgTime("2026/11/21 15:46:12+00")).toThrow(/unreadable timestamp/);
    expect(() => pgTime("2026-11-21 15-46-12+00")).toThrow(/unreadable timestamp/);
  });

  it("agrees with Date's own parser on any instant and any fraction length", () => {
    // A 32-bit LCG computed exactly (a plain product of two 31-bit numbers loses bits past 2^53).
    let seed = 42;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    for (let i = 0; i < 5000; i++) {
      const ms = Math.floor(next() * 4102444800000); // 1970..2100
      const iso = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
      const micros = String(Math.floor(next() * 1000)).padStart(3, "0");
      const fraction = `${iso.slice(20, 23)}${micros}`.slice(0, Math.floor(next() * 7)).replace(/0+$/, "");
      const text = `${iso.slice(0, 10)} ${iso.slice(11, 19)}${fraction ? `.${fraction}` : ""}+00`;
      const expected = Date.parse(`${iso.slice(0, 19)}.${fraction.padEnd(3, "0").slice(0, 3)}Z`);
      expect([text, pgTime(text)!.getTime()]).toEqual([text, expected]);
    }
  });
});
