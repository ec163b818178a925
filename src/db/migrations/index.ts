import type { MigrationObject } from "@mikro-orm/core";
import { Migration20261121133414_initial } from "./Migration20261121133414_initial";

/** Every committed migration, in order. Listed explicitly so that compiled and test runs find the same set. */
export const migrationsList: MigrationObject[] = [
  { name: "Migration20261121133414_initial", class: Migration20261121133414_initial },
];
