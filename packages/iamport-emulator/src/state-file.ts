import fs from "node:fs";
import path from "node:path";
import type { StateSnapshot } from "./state";
import type { V2Snapshot } from "./v2/api";

/*
 * The emulator's records in a JSON file, so that a restarted emulator still
 * knows the billing keys and schedules that the merchant's database refers to.
 * Written whole to a temporary file and renamed over the old one, so a crash
 * leaves the previous version or the new one, never half of one.
 */

const VERSION = 1;

export interface SavedEmulator {
  /** How far the emulator's clock was ahead of real time. */
  clockOffsetSeconds: number;
  state: StateSnapshot;
  /** PortOne V2's records, when V2 was on. */
  v2?: V2Snapshot;
}

interface FileLogger {
  error(...a: unknown[]): void;
}

/** The saved emulator, or null when the file does not exist; throws, naming the file, when it cannot be used. */
export function readStateFile(file: string): SavedEmulator | null {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new Error(`cannot read the emulator state file ${file}: ${(err as Error).message}`);
  }
  let data: { version?: unknown; clockOffsetSeconds?: unknown; state?: Partial<Record<keyof StateSnapshot, unknown>>; v2?: Partial<Record<keyof V2Snapshot, unknown>> };
  try {
    data = JSON.parse(text);
  } catch {
    throw new Error(`the emulator state file ${file} is not valid JSON: delete it to start with an empty emulator`);
  }
  const state = data?.state;
  const valid =
    data?.version === VERSION &&
    typeof data.clockOffsetSeconds === "number" &&
    typeof state?.seq === "number" &&
    (["customers", "payments", "schedules", "prepares"] as const).every((k) => Array.isArray(state[k])) &&
    (data.v2 === undefined || (["keys", "payments", "schedules"] as const).every((k) => Array.isArray(data.v2?.[k])));
  if (!valid) throw new Error(`the emulator state file ${file} is not one this emulator writes: delete it to start with an empty emulator`);
  return { clockOffsetSeconds: data.clockOffsetSeconds as number, state: state as StateSnapshot, v2: data.v2 as V2Snapshot | undefined };
}

/** Writes the file `delayMs` after a change (one write for a burst of changes), and on close. */
export class StateFileWriter {
  private dirty = false;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> | null = null;

  constructor(
    private readonly file: string,
    private readonly take: () => SavedEmulator,
    private readonly logger: FileLogger,
    private readonly delayMs = 200,
  ) {}

  /** Something changed: the file is written soon. */
  readonly changed = (): void => {
    this.dirty = true;
    this.schedule();
  };

  /** Writes what changed and stops. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.writing;
    if (this.dirty) await this.flush();
  }

  private schedule(): void {
    if (this.closed || this.timer || this.writing) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, this.delayMs);
    this.timer.unref();
  }

  private flush(): Promise<void> {
    this.dirty = false;
    // Serialized now, synchronously (the records are live objects that the next call changes); a failure is logged.
    this.writing = new Promise<string>((resolve) => resolve(JSON.stringify({ version: VERSION, ...this.take() })))
      .then((text) => writeAtomically(this.file, text))
      .catch((err: unknown) => this.logger.error({ err, file: this.file }, "could not write the emulator state file"))
      .finally(() => {
        this.writing = null;
        if (this.dirty) this.schedule();
      });
    return this.writing;
  }
}

async function writeAtomically(file: string, text: string): Promise<void> {
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const handle = await fs.promises.open(tmp, "w", 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.promises.rename(tmp, file);
}
