import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as tar from "tar";
import { dataFetchCommand, loadCifar } from "../src/data/mod.ts";

function assertEquals(actual: unknown, expected: unknown, message?: string): void {
  assert.deepStrictEqual(actual, expected, message ?? "values differ");
}

function including(text: string): { message: RegExp } {
  return { message: new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) };
}

const quiet = () => {};

function md5(bytes: Uint8Array): string {
  return createHash("md5").update(bytes).digest("hex");
}

/** cifar-10-python.tar.gz made from the python-batch fixtures. */
async function makeArchive(): Promise<Uint8Array> {
  const staging = await Deno.makeTempDir();
  try {
    const folder = `${staging}/cifar-10-batches-py`;
    await Deno.mkdir(folder);
    for (const name of ["data_batch_1", "data_batch_2", "test_batch", "batches.meta"]) {
      await Deno.copyFile(`tests/fixtures/data/cifar-10-batches-py/${name}`, `${folder}/${name}`);
    }
    await tar.c({ gzip: true, file: `${staging}/a.tar.gz`, cwd: staging }, ["cifar-10-batches-py"]);
    return await Deno.readFile(`${staging}/a.tar.gz`);
  } finally {
    await Deno.remove(staging, { recursive: true });
  }
}

/** Serves `body` for every request on 127.0.0.1 (port 0); counts requests. */
function serve(body: Uint8Array) {
  const state = { requests: 0 };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: quiet }, () => {
    state.requests++;
    return new Response(body.slice());
  });
  return { server, state, url: `http://127.0.0.1:${server.addr.port}` };
}

async function listing(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A port nothing listens on (bound, then released). */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test("data fetch: download with the right checksum unpacks the official folder", async () => {
  const archive = await makeArchive();
  const { server, state, url } = serve(archive);
  try {
    await withDir(async (dir) => {
      const options = {
        dataset: "cifar10" as const,
        dir,
        baseUrl: url,
        expectedMd5: md5(archive),
        log: quiet,
      };
      const result = await dataFetchCommand(options);
      assertEquals(result.downloaded, true);
      assertEquals(await listing(dir), ["cifar-10-batches-py", "cifar-10-python.tar.gz"]);
      const train = await loadCifar({ dataset: "cifar10", split: "train", dir });
      assertEquals(Array.from(train.labels), [3, 9, 0, 1, 7]);
      // A second call finds the folder and downloads nothing.
      assertEquals((await dataFetchCommand(options)).downloaded, false);
      assertEquals(state.requests, 1);
    });
  } finally {
    await server.shutdown();
  }
});

Deno.test("data fetch: a wrong checksum is an error and leaves nothing behind", async () => {
  const archive = await makeArchive();
  const { server, url } = serve(archive);
  try {
    await withDir(async (dir) => {
      await assert.rejects(
        () =>
          dataFetchCommand({
            dataset: "cifar10",
            dir,
            baseUrl: url,
            expectedMd5: "0".repeat(32),
            log: quiet,
          }),
        {
          message: `${url}/cifar-10-python.tar.gz: downloaded file has md5 ${md5(archive)}, ` +
            `expected ${"0".repeat(32)} (corrupt download?)`,
        },
      );
      assertEquals(await listing(dir), []);
    });
  } finally {
    await server.shutdown();
  }
});

Deno.test("data fetch: a truncated archive (checksum matching the cut file) fails to unpack, nothing left", async () => {
  const archive = (await makeArchive()).subarray(0, 2000);
  const { server, url } = serve(archive);
  try {
    await withDir(async (dir) => {
      await assert.rejects(
        () =>
          dataFetchCommand({
            dataset: "cifar10",
            dir,
            baseUrl: url,
            expectedMd5: md5(archive),
            log: quiet,
          }),
        including(`${dir}/cifar-10-python.tar.gz: corrupt or truncated archive`),
      );
      assertEquals(await listing(dir), []);
    });
  } finally {
    await server.shutdown();
  }
});

Deno.test("data fetch: a connection that breaks off mid-body is an error, nothing left", async () => {
  const archive = await makeArchive();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  // Declares the full length, sends half, then closes: a download cut by the network.
  const serving = (async () => {
    const connection = await listener.accept();
    await connection.read(new Uint8Array(4096));
    const head =
      `HTTP/1.1 200 OK\r\nContent-Length: ${archive.length}\r\nConnection: close\r\n\r\n`;
    await connection.write(new TextEncoder().encode(head));
    await connection.write(archive.subarray(0, archive.length >> 1));
    connection.close();
  })();
  try {
    await withDir(async (dir) => {
      await assert.rejects(
        () =>
          dataFetchCommand({
            dataset: "cifar10",
            dir,
            baseUrl: `http://127.0.0.1:${port}`,
            expectedMd5: md5(archive),
            log: quiet,
          }),
        including(`download of http://127.0.0.1:${port}/cifar-10-python.tar.gz`),
      );
      assertEquals(await listing(dir), []);
    });
  } finally {
    await serving;
    listener.close();
  }
});

Deno.test("data fetch offline: one message saying where to put the files; a placed archive works", async () => {
  await withDir(async (dir) => {
    const baseUrl = `http://127.0.0.1:${closedPort()}`;
    await assert.rejects(
      () => dataFetchCommand({ dataset: "cifar10", dir, baseUrl, log: quiet }),
      including(
        `download ${baseUrl}/cifar-10-python.tar.gz elsewhere and put it at ${dir}/cifar-10-python.tar.gz ` +
          `(md5 c58f30108f718f92721af3b95e74349a), or unpack it so that ${dir}/cifar-10-batches-py/ exists`,
      ),
    );
    assertEquals(await listing(dir), []);
    // The user puts the archive there by hand: it is verified and unpacked without the network.
    const archive = await makeArchive();
    await Deno.writeFile(`${dir}/cifar-10-python.tar.gz`, archive);
    const result = await dataFetchCommand({
      dataset: "cifar10",
      dir,
      baseUrl,
      expectedMd5: md5(archive),
      log: quiet,
    });
    assertEquals(result.downloaded, false);
    assertEquals((await loadCifar({ dataset: "cifar10", split: "test", dir })).count, 2);
    await assert.rejects(
      () => dataFetchCommand({ dataset: "cifar100", dir, format: "binary", log: quiet }),
      { message: "data fetch: no known binary archive for cifar100 (use --format python)" },
    );
  });
});
