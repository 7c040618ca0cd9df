// Builds the demo inbox the edge serves in development mode (socket_edge/static/demo) and
// checks the size budgets of the packages.
//
//   node scripts/build.mjs           write the demo's files
//   node scripts/build.mjs --check   fail if the files on disk are not the build of the
//                                    current sources, or a package is over its budget
//
// esbuild's output depends only on its version (pinned by package-lock.json) and the
// sources, so a fresh build equals the committed one byte for byte.

import { readFile, writeFile, mkdir } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(web, "..", "socket_edge", "static", "demo");
const check = process.argv.includes("--check");

// Minified and gzipped, React excluded (docs/web.md, "Size").
const BUDGETS = [
  { name: "client core", entry: "packages/client/src/index.ts", external: [], limit: 6.5 * 1024 },
  {
    name: "React bindings + bell",
    entry: "packages/react/src/index.ts",
    external: ["react", "react-dom", "react/jsx-runtime", "@tour-notify/client"],
    limit: 12 * 1024,
  },
];

async function bundle(entry, options = {}) {
  const result = await build({
    entryPoints: [join(web, entry)],
    bundle: true,
    minify: true,
    format: "esm",
    target: "es2020",
    jsx: "automatic",
    write: false,
    logLevel: "silent",
    legalComments: "eof",
    absWorkingDir: web,
    ...options,
  });
  return result.outputFiles[0].contents;
}

async function demoFiles() {
  const js = await bundle("demo/main.tsx", {
    define: { "process.env.NODE_ENV": '"production"' },
  });
  const html = await readFile(join(web, "demo", "index.html"));
  return { "demo.js": js, "index.html": html };
}

let failed = false;
for (const { name, entry, external, limit } of BUDGETS) {
  const size = gzipSync(await bundle(entry, { external })).length;
  const verdict = size <= limit ? "ok" : "OVER BUDGET";
  console.log(`${name}: ${size} bytes gzipped (budget ${limit}) ${verdict}`);
  failed ||= size > limit;
}

const files = await demoFiles();
await mkdir(out, { recursive: true });
for (const [name, contents] of Object.entries(files)) {
  const path = join(out, name);
  const where = relative(join(web, ".."), path);
  if (check) {
    const onDisk = await readFile(path).catch(() => null);
    if (onDisk === null || Buffer.compare(onDisk, Buffer.from(contents)) !== 0) {
      console.error(`${where} is not the build of the current sources: run \`npm run build\` in web/`);
      failed = true;
    } else {
      console.log(`${where}: the build of the current sources`);
    }
  } else {
    await writeFile(path, contents);
    console.log(`wrote ${where} (${contents.length} bytes)`);
  }
}
process.exit(failed ? 1 : 0);
