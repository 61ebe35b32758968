// Entry of the archive worker when the app runs from its TypeScript sources (vitest, tsx). Node 20
// ignores --import in a worker's execArgv, so tsx is registered here, inside the worker, before the
// real entry is imported. After `tsc` the worker starts from dist/outputs/archive/worker.js instead.
import { register } from "tsx/esm/api";

register();
await import("./worker.ts");
