import { scrubCoercionMessage, withoutSuggestions } from "../../src/graphql/errors";

describe("scrubCoercionMessage", () => {
  it.each([
    [
      'Variable "$input" got invalid value { customerUid: "c1", cardNumber: "4242-4242-4242-4242", expiry: "2031-12", birth: "731129" }; Field "pwd" is not defined by type "RegisterCardInput".',
      'Variable "$input" got an invalid value; Field "pwd" is not defined by type "RegisterCardInput".',
    ],
    [
      'Variable "$input" got invalid value 4242424242424242 at "input.cardNumber"; String cannot represent a non string value: 4242424242424242',
      'Variable "$input" got an invalid value at "input.cardNumber"; String cannot represent a non string value',
    ],
    ['Expected value of type "String!", found 731129.', 'Expected value of type "String!"'],
    ['Int cannot represent non-integer value: "2031-12"', "Int cannot represent non-integer value"],
  ])("drops the value from %s", (input, expected) => {
    expect(scrubCoercionMessage(input)).toBe(expected);
  });

  it("keeps messages without values as they are", () => {
    expect(scrubCoercionMessage('Cannot query field "nope" on type "Query".')).toBe('Cannot query field "nope" on type "Query".');
  });
});

describe("withoutSuggestions", () => {
  it.each([
    ['Cannot query field "paymnt" on type "Query". Did you mean "payment" or "payments"?', 'Cannot query field "paymnt" on type "Query".'],
    ['Unknown argument "merchantUd" on field "Query.payment". Did you mean "merchantUid"?', 'Unknown argument "merchantUd" on field "Query.payment".'],
    ['Unknown type "Paymnt". Did you mean "Payment", "PaymentStatus", or "PaymentConnection"?', 'Unknown type "Paymnt".'],
    [
      'Value "PAIDD" does not exist in "PaymentStatus" enum. Did you mean the enum value "PAID"?',
      'Value "PAIDD" does not exist in "PaymentStatus" enum.',
    ],
    ['Cannot query field "x" on type "Node". Did you mean to use an inline fragment on "Payment"?', 'Cannot query field "x" on type "Node".'],
    ['First. Did you mean "a"? Second. Did you mean "b"? Third.', "First. Second. Third."],
    ['Cannot query field "nope" on type "Query".', 'Cannot query field "nope" on type "Query".'],
    // Not a hint as graphql-js writes them (no closing "?"): left as it is.
    ["Did you mean it", "Did you mean it"],
  ])("%s", (input, expected) => {
    expect(withoutSuggestions(input)).toBe(expected);
  });
});

describe("error messages that echo the caller's text", () => {
  // The caller controls part of these messages (a string token in a syntax error, a variable's value).
  // Patterns that scan the rest of the message from every repetition of a phrase take time in the
  // square of its length. The bound is the complexity class, measured against a baseline in the same
  // test: one message of n bytes against twenty messages of n/20. Linear code costs about the same for
  // both (a ratio near 1); a quadratic scan costs twenty times more for the long one.
  const N = 200_000;
  const PARTS = 20;
  const cases: [string, (n: number) => string][] = [
    ["spaces in a syntax error", (n) => `Syntax Error: Expected "{", found String "${" ".repeat(n)}".`],
    ["repeated hints without a question mark", (n) => `x${" Did you mean ".repeat(Math.floor(n / 14))}`],
    ["repeated 'cannot represent'", (n) => `Variable "$x" got invalid value "a"; ${"cannot represent ".repeat(Math.floor(n / 17))}`],
  ];
  const format = (m: string) => withoutSuggestions(scrubCoercionMessage(m));
  /** One run of fn (four times, so that a run is long enough to time), in ms. */
  const timed = (fn: () => void): number => {
    const t0 = process.hrtime.bigint();
    for (let k = 0; k < 4; k++) fn();
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  /**
   * The fastest of seven runs of each, the two taking turns: a burst of load on a shared machine then slows
   * runs of both rather than all the runs of one.
   */
  const fastestOfBoth = (a: () => void, b: () => void): [number, number] => {
    let bestA = Infinity;
    let bestB = Infinity;
    for (let i = 0; i < 7; i++) {
      bestA = Math.min(bestA, timed(a));
      bestB = Math.min(bestB, timed(b));
    }
    return [bestA, bestB];
  };
  it.each(cases)("formats %s in linear time", (_what, make) => {
    const long = make(N);
    const shorts = Array.from({ length: PARTS }, () => make(N / PARTS));
    format(long); // warm-up: compile the regexes and the scan before measuring
    const [longMs, shortsMs] = fastestOfBoth(
      () => format(long),
      () => shorts.forEach(format),
    );
    // Generous for noise on a loaded machine (a linear scan measures about 1); a quadratic one measures about 20.
    expect(longMs / Math.max(shortsMs, 2)).toBeLessThan(8);
  });
});
