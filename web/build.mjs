// Build the web editor into src/cowrite/server/static (or $OUTDIR): deterministic output, no
// source maps, no timestamps, so the committed assets can be checked against a fresh build.
//
//   npm ci && npm run build            -> ../src/cowrite/server/static/
//   OUTDIR=/tmp/x npm run build        -> /tmp/x/
//
// Files: index.html, app.css, favicon.svg (copied), client.js (the JavaScript client as a
// standalone ES module, readable), app.js (the page: CodeMirror bundled and minified; it imports
// ./client.js at run time, so the page and other front ends share one client), rich.js (the
// rich-text editor: Tiptap, Yjs, the Hocuspocus provider and y-indexeddb, minified; app.js
// imports it at run time when a rich-text document is opened). The build fails if rich.js would
// hold two copies of a module that must be unique (yjs, lib0, y-protocols, prosemirror-*).
import { build } from "esbuild";
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(process.env.OUTDIR || path.join(here, "..", "src", "cowrite", "server", "static"));
const pkg = JSON.parse(await readFile(path.join(here, "package.json"), "utf8"));
const pinned = (test) =>
  Object.entries(pkg.devDependencies)
    .filter(([name]) => test(name))
    .map(([name, version]) => `${name}@${version}`)
    .join(", ");
const versions = pinned((name) => name.startsWith("@codemirror/"));
const richVersions = pinned((name) => !name.startsWith("@codemirror/") && name !== "esbuild");

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

// the page imports "./client.js" and "./rich.js": keep them run-time imports of the standalone modules
const externalClient = {
  name: "external-client",
  setup(b) {
    b.onResolve({ filter: /^\.\/(client|rich)\.js$/ }, (args) =>
      [path.join("src", "app.js"), path.join("src", "cm-text.js")].some((f) => args.importer.endsWith(f)) ? { path: args.path, external: true } : undefined,
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

const richOut = await build({
  ...common,
  entryPoints: ["src/rich.js"],
  minify: true,
  metafile: true,
  banner: { js: `/* cowrite rich-text editor. Built from web/src by web/build.mjs. Bundles ${richVersions} and their dependencies (prosemirror-*, linkifyjs, @lifeomic/attempt; all MIT licensed). */` },
});

// one copy of each: two yjs (or prosemirror-model...) in one page break the editor in subtle ways
const UNIQUE = /node_modules\/((?:@[^/]+\/)?(?:yjs|lib0|y-protocols|prosemirror-[a-z]+|@tiptap\/y-tiptap))\//;
const copies = new Map();
for (const input of Object.keys(richOut.metafile.inputs)) {
  const m = UNIQUE.exec(input);
  if (!m) continue;
  const root = input.slice(0, m.index + m[0].length);
  if (!copies.has(m[1])) copies.set(m[1], new Set());
  copies.get(m[1]).add(root);
}
const doubled = [...copies].filter(([, roots]) => roots.size > 1);
if (doubled.length) throw new Error(`rich.js would bundle more than one copy of: ${doubled.map(([n, r]) => `${n} (${[...r].join(", ")})`).join("; ")}`);
if (!copies.has("yjs")) throw new Error("rich.js does not bundle yjs?");

const outputs = [
  ["client.js", clientOut.outputFiles[0].contents],
  ["app.js", appOut.outputFiles[0].contents],
  ["rich.js", richOut.outputFiles[0].contents],
];
for (const [name, contents] of outputs) await writeFile(path.join(outdir, name), contents);
for (const name of ["index.html", "app.css", "favicon.svg"]) await copyFile(path.join(here, "src", name), path.join(outdir, name));
console.log(`built ${[...outputs.map(([n]) => n), "index.html", "app.css", "favicon.svg"].join(", ")} into ${outdir}`);
