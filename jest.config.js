/** @type {import('jest').Config} */
module.exports = {
  // Jest's Node environment; its workers exit as soon as the run is over (see the file).
  testEnvironment: "<rootDir>/test/support/environment.js",
  // The emulator package's tests run with the server's.
  roots: ["<rootDir>/test", "<rootDir>/packages/iamport-emulator/test"],
  testMatch: ["**/*.test.ts"],
  transform: {
    "^.+\\.ts$": [
      "@swc/jest",
      {
        jsc: {
          parser: { syntax: "typescript", decorators: true },
          transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false },
          target: "es2022",
        },
        module: { type: "commonjs" },
        sourceMaps: "inline",
      },
    ],
  },
  // The emulator package by its source (the root package.json's "imports" name its build, for Node).
  moduleNameMapper: { "^#iamport-emulator$": "<rootDir>/packages/iamport-emulator/src/index.ts" },
  globalSetup: "<rootDir>/test/support/global-setup.ts",
  // Generous: a loaded 2-core machine starts PGlite and the emulator slowly (a harness start in a beforeAll
  // took longer than 90 s beside other test runs); no test asserts timing.
  testTimeout: 180000,
  maxWorkers: 2,
};
