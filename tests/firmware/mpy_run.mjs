// Runs a Python script under real MicroPython (the WebAssembly port, via Node.js).
//
//   node tests/firmware/mpy_run.mjs [--heap BYTES] [--pkg DIR] SCRIPT.py [EXTRA.py ...]
//
// The firmware package (firmware/scfw/*.py, or every *.py/*.mpy in --pkg DIR, e.g. the output
// of mpy-cross) is copied to /scfw in MicroPython's virtual filesystem, as it would sit at the
// root of a board; EXTRA files are copied to /. SCRIPT runs as async code (top-level await
// allowed). Exit code 1 if it raises, 2 on usage errors.
//
// --heap BYTES gives MicroPython a GC heap of that size that can NOT grow, like an ESP32 without
// PSRAM. This build adds heap areas on demand (split heap, growing into the wasm memory), so
// after loading we make the wasm memory unable to grow and hand every byte malloc still has to
// this script: the GC's next area request then fails and the app sees MemoryError. (In this
// port gc.mem_free() still adds a nominal 128 MiB "max new split"; scripts subtract it.)
import { readFileSync, readdirSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const modPath = join(root, "node_modules", "@micropython", "micropython-webassembly-pyscript", "micropython.mjs");

const argv = process.argv.slice(2);
let heap = 0;
let pkgDir = join(root, "firmware", "scfw");
while (argv.length && argv[0].startsWith("--")) {
  const flag = argv.shift();
  const value = argv.shift();
  if (flag === "--heap") heap = parseInt(value, 10);
  else if (flag === "--pkg") pkgDir = resolve(value);
  else {
    console.error("unknown option " + flag);
    process.exit(2);
  }
}
const [script, ...extras] = argv;
if (!script || Number.isNaN(heap)) {
  console.error("usage: node mpy_run.mjs [--heap BYTES] [--pkg DIR] SCRIPT.py [EXTRA.py ...]");
  process.exit(2);
}

// With --heap, emscripten reports every refused heap growth on console.error: expected, dropped.
const consoleError = console.error.bind(console);
console.error = (...args) => {
  const text = String(args[0]);
  if (!(text.startsWith("growMemory:") || text.startsWith("Failed to grow the heap"))) {
    consoleError(...args);
  }
};

const { loadMicroPython } = await import(modPath);
const mp = await loadMicroPython({
  heapsize: heap || 16 * 1024 * 1024,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});

mp.FS.mkdir("/scfw");
for (const name of readdirSync(pkgDir)) {
  if (name.endsWith(".py") || name.endsWith(".mpy")) {
    mp.FS.writeFile("/scfw/" + name, readFileSync(join(pkgDir, name)));
  }
}
for (const extra of extras) {
  mp.FS.writeFile("/" + basename(extra), readFileSync(extra));
}

if (heap) {
  // Freeze the heap: no wasm memory growth, and malloc's remaining space taken (never freed).
  WebAssembly.Memory.prototype.grow = function () {
    throw new RangeError("heap capped by mpy_run.mjs --heap");
  };
  const M = mp._module;
  // Room for the glue's own strings (the script's text): smaller than any area the GC would
  // ask for (at least its current total), so the GC can never take it.
  const reserve = M._malloc(Math.min(32768, heap >> 2));
  for (let size = 1 << 24; size >= 16; size >>= 1) {
    while (M._malloc(size)) {}
  }
  M._free(reserve);
  // Python objects handed to JavaScript (each asyncio timer's callback) stay referenced from
  // MicroPython's heap until V8 finalizes their proxies; run V8's GC often (node --expose-gc)
  // so that table does not grow with V8's timing instead of the app's use.
  if (typeof globalThis.gc === "function") setInterval(globalThis.gc, 100).unref();
}

// A Python exception raised inside a callback from JavaScript (an asyncio timer) ends up here.
for (const event of ["uncaughtException", "unhandledRejection"]) {
  process.on(event, (err) => {
    process.stderr.write("uncaught: " + String(err && err.message ? err.message : err) + "\n");
    process.exit(1);
  });
}

try {
  await mp.runPythonAsync(readFileSync(script, "utf8"));
} catch (err) {
  // MicroPython's traceback text is in the error message.
  process.stderr.write(String(err && err.message ? err.message : err) + "\n");
  process.exit(1);
}
