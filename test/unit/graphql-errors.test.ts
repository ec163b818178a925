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
  // Patterns that scan the rest of the message from every repetition of a phrase took time in the
  // square of its length (0.3 s for 100 kB of "cannot represent ", 7 s for a suggestion regex with a
  // leading \s* on 100 kB of spaces); these inputs are ten times that, so a quadratic scan takes many
  // seconds where a linear one takes milliseconds.
  const MB = 1_000_000;
  it.each([
    ["spaces in a syntax error", `Syntax Error: Expected "{", found String "${" ".repeat(MB)}".`],
    ["repeated hints without a question mark", `x${" Did you mean ".repeat(MB / 14)}`],
    ["repeated 'cannot represent'", `Variable "$x" got invalid value "a"; ${"cannot represent ".repeat(MB / 17)}`],
  ])("formats %s in linear time", (_what, message) => {
    const started = Date.now();
    withoutSuggestions(scrubCoercionMessage(message));
    expect(Date.now() - started).toBeLessThan(3000);
  });
});
