// Loads a Generative UI component from a running server the way Agent Chat UI's
// LoadExternalComponent does, without a browser: the SDK's UI client POSTs /ui/{name},
// the fragment's <script> is fetched and run in this global scope, its onload code calls
// the bundle's render(), and the component handed to the SDK's store is rendered with
// this process's React (the host page's; the bundle carries none).
//
// usage: node load.mjs <server url> <bundle name> <component> <props as JSON>
// stdout: {"html": rendered markup, "css": [stylesheet texts], "fragment": the HTML}
import * as vm from "node:vm";

const [url, bundle, component, propsJson] = process.argv.slice(2);
const shadowRootId = "child-shadow-test";
const children = [];
globalThis.window = globalThis;
globalThis.document = {
  getElementById: (id) => (id === shadowRootId
    ? { shadowRoot: { appendChild: (el) => children.push(el) } } : null),
  createElement: (tag) => ({ tagName: tag }),
};

// Importing react-ui runs bootstrapUiContext(): it installs the module table and the store.
await import("@langchain/langgraph-sdk/react-ui");
const { Client } = await import("@langchain/langgraph-sdk");
const React = await import("react");
const { renderToStaticMarkup } = await import("react-dom/server");

const unescape = (s) => s.replaceAll("&quot;", '"').replaceAll("&#x27;", "'")
  .replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&amp;", "&");
const client = new Client({ apiUrl: url });
const fragment = (await client["~ui"].getComponent(bundle, component))
  .replace("{{shadowRootId}}", shadowRootId);
const css = [];
for (const [, href] of fragment.matchAll(/<link rel="stylesheet" href="([^"]+)"/g)) {
  css.push(await (await fetch(new URL(unescape(href), url))).text());
}
const scripts = [...fragment.matchAll(/<script src="([^"]+)" onload='([^']+)'><\/script>/g)];
if (scripts.length !== 1) throw new Error(`expected one script in: ${fragment}`);
const [, src, onload] = scripts[0];
const response = await fetch(new URL(unescape(src), url));
if (!response.ok) throw new Error(`GET ${src}: ${response.status}`);
vm.runInThisContext(await response.text(), { filename: src });
vm.runInThisContext(unescape(onload));

const store = window[Symbol.for("LGUI_EXT_STORE")];
const snapshot = store.getBoundStore(shadowRootId).getSnapshot();
if (!snapshot?.comp) throw new Error("render() handed no component to the store");
if (snapshot.target !== children[0]) throw new Error("not rendered into the shadow root");
const html = renderToStaticMarkup(React.createElement(snapshot.comp, JSON.parse(propsJson)));
process.stdout.write(JSON.stringify({ html, css, fragment }) + "\n");
