// Drives the real Node client (faktory-worker) against a server; called from
// tests/test_node_client.py.  Prints one JSON line per event on stdout.
const faktory = require("faktory-worker");

const [mode, url, wid] = process.argv.slice(2);
const out = (event) => console.log(JSON.stringify(event));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function basic() {
  const client = new faktory.Client({ url });
  const done = [];
  const worker = new faktory.Worker({
    url,
    queues: ["node-q"],
    concurrency: 1,
    registry: {
      NodeJob: async (...args) => { done.push(args); },
      Boom: async () => { throw new Error("kaboom"); },
    },
  });
  await worker.work();
  await client.push({ jobtype: "NodeJob", args: [1, "two"], queue: "node-q" });
  while (done.length < 1) await sleep(50);
  out({ event: "processed", args: done[0] });

  await client.send(["QUEUE", "PAUSE", "node-q"]);
  await client.push({ jobtype: "NodeJob", args: [2], queue: "node-q" });
  await sleep(2500);
  out({ event: "while_paused", processed: done.length });
  await client.send(["QUEUE", "RESUME", "node-q"]);
  while (done.length < 2) await sleep(50);
  out({ event: "resumed", processed: done.length });

  await client.push({ jobtype: "Boom", args: [], queue: "node-q", retry: 5 });
  let info = await client.info();
  while (info.faktory.sets.retries < 1) { await sleep(100); info = await client.info(); }
  await client.retries.ofType("Boom").kill();
  info = await client.info();
  out({ event: "mutated", retries: info.faktory.sets.retries, dead: info.faktory.sets.dead });
  out({ event: "info", processed: info.faktory.total_processed, failures: info.faktory.total_failures,
        version: info.server.faktory_version });
  await worker.stop();
  await client.close();
}

async function controlled() {
  const seen = [];
  const worker = new faktory.Worker({
    url, wid, queues: ["node-ctl"], concurrency: 1, beatInterval: 0.5, timeout: 2,
    registry: { CtlJob: async (n) => { seen.push(n); out({ event: "ran", n }); } },
  });
  await worker.work();
  out({ event: "started" });
  // Runs until the server tells it to terminate, which ends the process.
}

async function tlsCheck() {
  const ca = require("fs").readFileSync(wid);  // third argument: the CA file
  const client = new faktory.Client({ url, tlsOptions: { ca } });
  await client.push({ jobtype: "TlsJob", args: [], queue: "node-tls" });
  const info = await client.info();
  out({ event: "tls", queued: info.faktory.queues["node-tls"] });
  await client.close();
}

const modes = { basic, controlled, tls: tlsCheck };
modes[mode]().catch((e) => {
  out({ event: "error", message: String(e && e.stack || e) });
  process.exit(2);
});

