// Runs a Python script under real MicroPython (the WebAssembly port, via Node.js).
//
//   node tests/firmware/mpy_run.mjs SCRIPT.py [EXTRA.py ...]
//
// The firmware package (firmware/scfw/*.py) is copied to /scfw in MicroPython's virtual
// filesystem, as it would sit at the root of a board; EXTRA files are copied to /. SCRIPT runs
// as async code (top-level await allowed). Exit code 1 if it raises, 2 on usage errors.
import { readFileSync, readdirSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const pkgDir = join(root, "firmware", "scfw");
const modPath = join(root, "node_modules", "@micropython", "micropython-webassembly-pyscript", "micropython.mjs");

const [script, ...extras] = process.argv.slice(2);
if (!script) {
  console.error("usage: node mpy_run.mjs SCRIPT.py [EXTRA.py ...]");
  process.exit(2);
}

const { loadMicroPython } = await import(modPath);
const mp = await loadMicroPython({
  heapsize: 16 * 1024 * 1024,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});

mp.FS.mkdir("/scfw");
for (const name of readdirSync(pkgDir)) {
  if (name.endsWith(".py")) mp.FS.writeFile("/scfw/" + name, readFileSync(join(pkgDir, name)));
}
for (const extra of extras) {
  mp.FS.writeFile("/" + basename(extra), readFileSync(extra));
}

try {
  await mp.runPythonAsync(readFileSync(script, "utf8"));
} catch (err) {
  // MicroPython's traceback text is in the error message.
  process.stderr.write(String(err && err.message ? err.message : err) + "\n");
  process.exit(1);
}
