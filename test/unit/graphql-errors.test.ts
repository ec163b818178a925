import { scrubCoercionMessage } from "../../src/graphql/errors";

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
