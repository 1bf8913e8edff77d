// Builds aegra.json `ui` bundles for LoadExternalComponent; run by aegra/adapters/ui/build.py
// from the toolchain folder (where esbuild and the Tailwind plugin are installed).
//
// stdin:  {"cwd": project root, "shared": [module, ...],
//          "jobs": [{"name", "entry": absolute .tsx/.jsx path, "outdir"}]}
// stdout: {"results": [{"name", "assets": [file, ...], "inputs": [absolute path, ...]}]}
// Build errors go to stderr, exit code 1.
//
// Each bundle is an IIFE assigning `__LGUI_<name>` = {render}; `render(component,
// shadowRootId)` hands the component and a fresh element inside that shadow root to the
// host page's store (`bootstrapUiContext` in @langchain/langgraph-sdk/react-ui). Shared
// modules (React, the SDK, ui_config.shared) are not bundled: each import becomes a call
// to the host page's `globalThis[Symbol.for("LGUI_REQUIRE")]`, so the page's React renders
// the component.
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { build } from "esbuild";
import tailwind from "esbuild-plugin-tailwindcss";

const ENTRY_NS = "aegra-ui-entry";
const HOST_NS = "aegra-ui-host";

function renderer(entry) {
  return [
    `import components from ${JSON.stringify(entry)};`,
    `export function render(component, shadowRootId) {`,
    `  const root = document.getElementById(shadowRootId).shadowRoot;`,
    `  const target = document.createElement("div");`,
    `  root.appendChild(target);`,
    `  window[Symbol.for("LGUI_EXT_STORE")].respond(shadowRootId, components[component], target);`,
    `}`,
  ].join("\n");
}

function entryPlugin(entry) {
  return {
    name: "aegra-ui-entry",
    setup(b) {
      b.onResolve({ filter: /^aegra-ui-entry$/ }, () => ({ path: entry, namespace: ENTRY_NS }));
      b.onLoad({ filter: /.*/, namespace: ENTRY_NS }, () => ({
        contents: renderer(entry),
        resolveDir: path.dirname(entry),
        loader: "js",
      }));
    },
  };
}

function hostModulesPlugin(modules) {
  const escaped = modules.map((m) => m.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  // A package name also covers its subpaths (react -> react/jsx-runtime), as esbuild's
  // `external` does.
  const filter = new RegExp(`^(${escaped.join("|")})(/.*)?$`);
  return {
    name: "aegra-ui-host-modules",
    setup(b) {
      b.onResolve({ filter }, (args) => ({ path: args.path, namespace: HOST_NS }));
      b.onLoad({ filter: /.*/, namespace: HOST_NS }, (args) => ({
        contents:
          `module.exports = globalThis[Symbol.for("LGUI_REQUIRE")](${JSON.stringify(args.path)});`,
        loader: "js",
      }));
    },
  };
}

async function buildOne(job, cwd, shared) {
  const result = await build({
    absWorkingDir: cwd,
    entryPoints: { entrypoint: "aegra-ui-entry" },
    outdir: job.outdir,
    bundle: true,
    write: false,
    metafile: true,
    platform: "browser",
    format: "iife",
    target: "es2020",
    jsx: "automatic",
    globalName: job.globalName,
    logLevel: "silent",
    plugins: [entryPlugin(job.entry), hostModulesPlugin(shared), tailwind()],
  });
  await fs.mkdir(job.outdir, { recursive: true });
  const assets = [];
  for (const file of result.outputFiles) {
    await fs.writeFile(file.path, file.contents);
    assets.push(path.relative(job.outdir, file.path).split(path.sep).join("/"));
  }
  // Files read from disk only (virtual modules carry a "namespace:" prefix).
  const inputs = Object.keys(result.metafile.inputs)
    .filter((key) => !/^[a-z-]+:/.test(key))
    .map((key) => path.resolve(cwd, key));
  return { name: job.name, assets, inputs };
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const spec = JSON.parse(Buffer.concat(chunks).toString("utf-8"));
  const results = [];
  let failed = false;
  for (const job of spec.jobs) {
    try {
      results.push(await buildOne(job, spec.cwd, spec.shared));
    } catch (error) {
      failed = true;
      const messages = error.errors?.length
        ? error.errors.map((e) => {
            const at = e.location ? `${e.location.file}:${e.location.line}:${e.location.column}: ` : "";
            return `${at}${e.text}`;
          })
        : [String(error?.stack ?? error)];
      process.stderr.write(`ui.${job.name}: ${messages.join("\n  ")}\n`);
    }
  }
  if (failed) process.exit(1);
  process.stdout.write(JSON.stringify({ results }) + "\n");
}

main().catch((error) => {
  process.stderr.write(`${error?.stack ?? error}\n`);
  process.exit(1);
});
