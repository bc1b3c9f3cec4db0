// Drives a live studio server with the official Replicate JS client, configured as the editor
// configures it: only `baseUrl` changes. Prints one JSON object of what it saw; the pytest side
// (tests/test_replicate_js_client.py) makes the assertions.
//
//   node tests/js/replicate_client.mjs http://127.0.0.1:PORT TOKEN

import Replicate from "replicate";

const [baseUrl, auth] = process.argv.slice(2);
const replicate = new Replicate({ auth, baseUrl: `${baseUrl}/v1` });
const MODEL = "black-forest-labs/flux-schnell";
const INPUT = { prompt: "a red fox", width: 256, height: 320, num_inference_steps: 1, seed: 7 };

// The PNG's size from its IHDR chunk: enough to prove the bytes are the asked image.
async function fetchImage(url) {
  const response = await fetch(url); // no auth header, as the editor's browser fetches outputs
  const bytes = new Uint8Array(await response.arrayBuffer());
  const view = new DataView(bytes.buffer);
  const png = bytes.length > 24 && String.fromCharCode(...bytes.slice(1, 4)) === "PNG";
  return {
    status: response.status,
    contentType: response.headers.get("content-type"),
    png,
    width: png ? view.getUint32(16) : null,
    height: png ? view.getUint32(20) : null,
  };
}

async function caught(promise) {
  try {
    await promise;
    return null;
  } catch (error) {
    return { message: String(error.message), status: error.response?.status ?? null };
  }
}

const result = {};

async function main() {
// run by model name (Prefer: wait, then polling if needed): http: outputs come back as URL strings
const output = await replicate.run(MODEL, { input: INPUT });
result.run = { output, image: await fetchImage(String(output[0])) };

// run by "owner/name:version", with the version id taken from the model object
const model = await replicate.models.get("black-forest-labs", "flux-schnell");
const version = model.latest_version.id;
const byVersion = await replicate.run(`${MODEL}:${version}`, { input: { ...INPUT, seed: 8 } });
result.runByVersion = { version, image: await fetchImage(String(byVersion[0])) };

// create, then wait by polling, with progress seen along the way
let prediction = await replicate.predictions.create({ model: MODEL, input: { ...INPUT, seed: 9 } });
result.created = { status: prediction.status, hasStream: Boolean(prediction.urls?.stream) };
prediction = await replicate.wait(prediction, { interval: 100 });
result.waited = { status: prediction.status, logs: prediction.logs, predictTime: prediction.metrics?.predict_time };

// the SSE stream (fetched without auth: the signed urls.stream is the credential)
const events = [];
for await (const event of replicate.stream(MODEL, { input: { ...INPUT, seed: 10 } })) {
  events.push({ event: event.event, data: event.data });
}
result.stream = events;

// cancel a queued prediction (the worker is busy with a slow one in front of it)
const slow = await replicate.predictions.create({ model: MODEL, input: { ...INPUT, num_inference_steps: 40, seed: 11 } });
const queued = await replicate.predictions.create({ model: MODEL, input: { ...INPUT, seed: 12 } });
const canceled = await replicate.predictions.cancel(queued.id);
await replicate.predictions.cancel(slow.id);
result.cancel = { status: canceled.status, final: (await replicate.predictions.get(queued.id)).status };

// list, newest first, and paginate
const page = await replicate.predictions.list();
result.list = { ids: page.results.map((p) => p.id), next: page.next };

// upload a file
const file = await replicate.files.create(new Blob([new Uint8Array([1, 2, 3, 4])]), { purpose: "test" });
result.file = { id: file.id, size: file.size, get: file.urls?.get, metadata: file.metadata };

// errors: an unknown model, and an input the model refuses
result.unknownModel = await caught(replicate.run("nobody/nothing", { input: { prompt: "x" } }));
result.badInput = await caught(replicate.run(MODEL, { input: { prompt: "x", width: 1000, height: 1000 } }));

}

// A failure prints its message alone (the client's ApiError dumps its whole Request otherwise).
main().then(
  () => console.log(JSON.stringify(result)),
  (error) => {
    console.error(`${error?.constructor?.name}: ${error?.message}`);
    process.exit(1);
  },
);
