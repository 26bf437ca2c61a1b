// Build the npm package @cowrite/client into dist/ (not committed):
//   npm ci && npm run build    -> dist/client.js, dist/react.js, dist/*.d.ts
// client.js is the same standalone module the server ships (web/src/client.js and its imports);
// react.js imports it as "./client.js" and React as a peer dependency.
import { build } from "esbuild";
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, "dist");
const pkg = JSON.parse(await readFile(path.join(here, "package.json"), "utf8"));
await mkdir(dist, { recursive: true });

const common = {
  absWorkingDir: here,
  bundle: true,
  format: "esm",
  target: ["es2022"],
  platform: "neutral",
  charset: "utf8",
  legalComments: "none",
  logLevel: "warning",
  banner: { js: `// ${pkg.name} ${pkg.version} (MIT). Built from cowrite's web/ by web/package/build.mjs.` },
};

await build({ ...common, entryPoints: ["../src/client.js"], outfile: path.join(dist, "client.js") });

const sharedClient = {
  name: "shared-client",
  setup(b) {
    b.onResolve({ filter: /\/src\/client\.js$/ }, () => ({ path: "./client.js", external: true }));
  },
};
await build({
  ...common,
  entryPoints: ["src/react.js"],
  outfile: path.join(dist, "react.js"),
  external: ["react"],
  plugins: [sharedClient],
});

for (const name of ["client.d.ts", "react.d.ts"]) await copyFile(path.join(here, "types", name), path.join(dist, name));
console.log(`built ${pkg.name} ${pkg.version} into ${dist}`);
