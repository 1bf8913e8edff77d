// Drives @langchain/langgraph-sdk against a running server; exits non-zero on the first
// mismatch. Run by tests/e2e/test_js_client.py: node compat.mjs <url>
import assert from "node:assert/strict";
import { Client } from "@langchain/langgraph-sdk";

const client = new Client({ apiUrl: process.argv[2] });
const checks = [];
const check = (name) => checks.push(name);

const assistants = await client.assistants.search({ graphId: "agent" });
assert.equal(assistants[0].assistant_id, "fe096781-5601-53d2-b2f6-0d3403f7e9ca");
const schemas = await client.assistants.getSchemas("agent");
assert.equal(schemas.graph_id, "agent");
assert.ok("context_schema" in schemas);
check("assistants");

const thread = await client.threads.create({ metadata: { user: "js" } });
assert.ok("values" in thread && "interrupts" in thread);
assert.equal(await client.threads.count({ metadata: { user: "js" } }), 1);
const byIds = await client.threads.search({ ids: [thread.thread_id] });
assert.equal(byIds.length, 1);
check("threads");

const events = [];
for await (const part of client.runs.stream(thread.thread_id, "agent", {
  input: { messages: [{ role: "user", content: "hi js" }] },
  streamMode: ["values", "messages-tuple", "updates"],
})) events.push(part.event);
assert.equal(events[0], "metadata");
assert.ok(events.includes("messages") && events.includes("updates"));
const waited = await client.runs.wait(thread.thread_id, "agent", {
  input: { messages: [{ role: "user", content: "again" }] } });
assert.equal(waited.messages.at(-1).content, "echo: again");
const state = await client.threads.getState(thread.thread_id);
assert.deepEqual(state.next, []);
assert.equal((await client.threads.getHistory(thread.thread_id, { limit: 2 })).length, 2);
const past = await client.threads.getHistory(thread.thread_id, { limit: 100 });
const ids = (states) => states.map((s) => s.checkpoint.checkpoint_id);
for (const before of [{ configurable: { checkpoint_id: past[1].checkpoint.checkpoint_id } },
  past[1].checkpoint]) {
  // Strictly older than `before`, newest first, then cut to `limit`.
  const older = await client.threads.getHistory(thread.thread_id, { limit: 2, before });
  assert.deepEqual(ids(older), ids(past.slice(2, 4)));
}
const copy = await client.threads.copy(thread.thread_id);
assert.notEqual(copy.thread_id, thread.thread_id);
check("runs+state");

const bg = await client.runs.create(thread.thread_id, "agent", {
  input: { messages: [{ role: "user", content: "bg" }] } });
const joined = [];
for await (const part of client.runs.joinStream(thread.thread_id, bg.run_id,
  { streamMode: ["values"] })) joined.push(part.event);
assert.ok(joined.includes("values") && !joined.includes("updates"));
const stateless = await client.runs.create(null, "agent", {
  input: { messages: [{ role: "user", content: "sl" }] }, onCompletion: "keep" });
const byRun = [];
for await (const part of client.runs.joinStream(null, stateless.run_id)) byRun.push(part.event);
assert.ok(byRun.includes("values"));
check("joinStream");

const other = await client.threads.create();
const seen = [];
const following = (async () => {
  for await (const part of client.threads.joinStream(other.thread_id)) seen.push(part.event);
})();
await new Promise((resolve) => setTimeout(resolve, 300));
await client.runs.wait(other.thread_id, "agent", {
  input: { messages: [{ role: "user", content: "t" }] } });
await following;
assert.ok(seen.includes("metadata") && seen.includes("values"));
check("threads.joinStream");

// streamMode "values": each run's values (and lifecycle), no other mode. A held run
// proves the stream open (its first event) before the queued one may start.
const watched = await client.threads.create();
const held = await client.runs.create(watched.thread_id, "slow", { input: { first: 60 } });
const queued = await client.runs.create(watched.thread_id, "slow", {
  input: { first: 0, delay: 0, tag: "js" }, streamMode: ["values", "updates"],
  multitaskStrategy: "enqueue" });
const parts = [];
for await (const part of client.threads.joinStream(watched.thread_id, { streamMode: "values" })) {
  if (parts.length === 0) await client.runs.cancel(watched.thread_id, held.run_id);
  parts.push(part);
}
const done = parts.filter((p) => p.event === "metadata" && p.data.status === "run_done");
assert.deepEqual(done.map((p) => p.data.run_id), [held.run_id, queued.run_id]);
assert.ok(!parts.some((p) => p.event === "updates"));
const values = parts.filter((p) => p.event === "values");
assert.deepEqual(values.at(-1).data.trail, ["one:js", "two:js", "three:js"]);
check("threads.joinStream values");

await client.store.putItem(["js", "ns"], "k1", { a: 1 });
const item = await client.store.getItem(["js", "ns"], "k1");
assert.deepEqual(item.namespace, ["js", "ns"]);
assert.equal((await client.store.searchItems(["js"], { limit: 5 })).items.length, 1);
check("store");

const cron = await client.crons.create("agent", {
  schedule: "*/5 * * * *", input: { messages: [] } });
assert.ok(cron.cron_id && cron.schedule === "*/5 * * * *" && cron.run_id);
check("crons");

console.log(JSON.stringify({ ok: true, checks }));
