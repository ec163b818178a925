/** The Iamport V1 emulator: a standalone program with no imports from the rest of src/. */
export { startEmulator, TEST_CARDS } from "./emulator";
export type { EmulatorLogger, EmulatorOptions, RunningEmulator } from "./emulator";
