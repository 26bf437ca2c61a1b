// Build the web editor into src/cowrite/server/static (or $OUTDIR): deterministic output, no
// source maps, no timestamps, so the committed assets can be checked against a fresh build.
//
//   npm ci && npm run build            -> ../src/cowrite/server/static/
//   OUTDIR=/tmp/x npm run build        -> /tmp/x/
//
// Files: index.html, app.css, favicon.svg (copied), client.js (the JavaScript client as a
// standalone ES module, readable), app.js (the page: CodeMirror bundled and minified; it imports
// ./client.js at run time, so the page and other front ends share one client).
import { build } from "esbuild";
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(process.env.OUTDIR || path.join(here, "..", "src", "cowrite", "server", "static"));
const pkg = JSON.parse(await readFile(path.join(here, "package.json"), "utf8"));
const versions = Object.entries(pkg.devDependencies)
  .filter(([name]) => name.startsWith("@codemirror/"))
  .map(([name, version]) => `${name}@${version}`)
  .join(", ");

await mkdir(outdir, { recursive: true });

const common = {
  absWorkingDir: here,
  bundle: true,
  format: "esm",
  target: ["es2022"],
  platform: "browser",
  charset: "utf8",
  legalComments: "none",
  logLevel: "warning",
  write: false,
};

const clientOut = await build({
  ...common,
  entryPoints: ["src/client.js"],
  banner: { js: "// cowrite JavaScript client (ES module, no dependencies). Built from web/src by web/build.mjs: edit the sources, not this file.\n// Docs: docs/javascript-client.md. License: MIT." },
});

// app.js imports "./client.js": keep it a run-time import of the standalone module
const externalClient = {
  name: "external-client",
  setup(b) {
    b.onResolve({ filter: /^\.\/client\.js$/ }, (args) =>
      args.importer.endsWith(path.join("src", "app.js")) ? { path: "./client.js", external: true } : undefined,
    );
  },
};

const appOut = await build({
  ...common,
  entryPoints: ["src/app.js"],
  minify: true,
  plugins: [externalClient],
  banner: { js: `/* cowrite web editor. Built from web/src by web/build.mjs. Bundles ${versions} and their dependencies (MIT licensed, by Marijn Haverbeke and others). */` },
});

const outputs = [
  ["client.js", clientOut.outputFiles[0].contents],
  ["app.js", appOut.outputFiles[0].contents],
];
for (const [name, contents] of outputs) await writeFile(path.join(outdir, name), contents);
for (const name of ["index.html", "app.css", "favicon.svg"]) await copyFile(path.join(here, "src", name), path.join(outdir, name));
console.log(`built ${[...outputs.map(([n]) => n), "index.html", "app.css", "favicon.svg"].join(", ")} into ${outdir}`);
