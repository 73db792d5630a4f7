// Starts the inference worker (Rust, built by Trunk as a no-modules worker).
// A failed start is reported to the page like any other bundle error, so the
// page never waits forever on a worker that did not come up.
importScripts("./integrabner-worker.js");
wasm_bindgen("./integrabner-worker_bg.wasm").catch((e) =>
  postMessage(
    JSON.stringify({
      kind: "error",
      request: null,
      message: `the analysis worker could not start: ${e}`,
      cause: "bundle-unavailable",
    })
  )
);
