// Build the example app into example/dist (React bundled, the package from ../dist).
import { build } from "esbuild";
import { copyFile, mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
await mkdir(path.join(here, "dist"), { recursive: true });
await build({
  absWorkingDir: here,
  entryPoints: ["app.jsx"],
  outfile: path.join(here, "dist", "app.js"),
  bundle: true,
  format: "esm",
  jsx: "automatic",
  minify: true,
  define: { "process.env.NODE_ENV": '"production"' },
  logLevel: "warning",
});
await copyFile(path.join(here, "index.html"), path.join(here, "dist", "index.html"));
console.log("built example/dist");
