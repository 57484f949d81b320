import assert from "node:assert/strict";
import jpeg from "jpeg-js";
import {
  centerCrop,
  decodeImage,
  loadImageFolder,
  loadImageList,
  resizeBilinear,
  resizeShorterSide,
  type RgbImage,
} from "../src/data/mod.ts";

const IMAGES = "tests/fixtures/data/images";

function assertEquals(actual: unknown, expected: unknown, message?: string): void {
  assert.deepStrictEqual(actual, expected, message ?? "values differ");
}

function including(text: string): { message: RegExp } {
  return { message: new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) };
}

/** A `.rgb` fixture: height, width (uint16 BE) then HWC bytes, as Pillow decoded/resized it. */
async function pillowRgb(path: string): Promise<RgbImage> {
  const bytes = await Deno.readFile(path);
  return {
    height: (bytes[0] << 8) | bytes[1],
    width: (bytes[2] << 8) | bytes[3],
    data: bytes.subarray(4),
  };
}

function differences(a: Uint8Array, b: Uint8Array): { max: number; mean: number } {
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    max = Math.max(max, d);
    sum += d;
  }
  return { max, mean: sum / a.length };
}

Deno.test("PNG modes decode to the RGB Pillow's convert('RGB') gives, exactly", async () => {
  for (const name of ["rgb.png", "gray.png", "gray_alpha.png", "palette.png", "rgba.png"]) {
    const image = decodeImage(await Deno.readFile(`${IMAGES}/${name}`), name);
    const reference = await pillowRgb(`${IMAGES}/${name}.rgb`);
    assertEquals([image.width, image.height], [37, 29], name);
    assertEquals(image.data, new Uint8Array(reference.data), name);
  }
});

Deno.test("JPEG (RGB, grayscale, CMYK) decodes close to Pillow's libjpeg", async () => {
  // jpeg-js upsamples chroma by replication where libjpeg interpolates, hence the RGB gap.
  const bounds: Record<string, { max: number; mean: number }> = {
    "rgb.jpg": { max: 100, mean: 2.5 },
    "gray.jpg": { max: 1, mean: 0.1 },
    "cmyk.jpg": { max: 1, mean: 0.1 },
  };
  for (const [name, bound] of Object.entries(bounds)) {
    const image = decodeImage(await Deno.readFile(`${IMAGES}/${name}`), name);
    const reference = await pillowRgb(`${IMAGES}/${name}.rgb`);
    assertEquals([image.width, image.height], [reference.width, reference.height], name);
    const { max, mean } = differences(image.data, reference.data);
    assert(max <= bound.max && mean <= bound.mean, `${name}: max ${max}, mean ${mean.toFixed(3)}`);
  }
});

Deno.test("bilinear resize matches Pillow byte for byte (shrink, enlarge, one axis)", async () => {
  const source = decodeImage(await Deno.readFile(`${IMAGES}/rgb.png`), "rgb.png");
  for (const [width, height] of [[20, 16], [60, 50], [37, 11]]) {
    const reference = await pillowRgb(`${IMAGES}/rgb.png.resize_${width}x${height}.rgb`);
    const resized = resizeBilinear(source, width, height);
    assertEquals(resized.data, new Uint8Array(reference.data), `${width}x${height}`);
  }
});

Deno.test("torchvision Resize(int) sizes and CenterCrop offsets", () => {
  assertEquals(resizeShorterSide(500, 375, 256), [341, 256]);
  assertEquals(resizeShorterSide(375, 500, 256), [256, 341]);
  assertEquals(resizeShorterSide(37, 29, 16), [20, 16]);
  // 5×4 image, pixel value = 10·row + column (grey); crop 2×2: top = round(1.0) = 1, left = round(1.5) = 2.
  const data = new Uint8Array(5 * 4 * 3);
  for (let y = 0; y < 4; y++) {
    for (let x = 0; x < 5; x++) data.fill(10 * y + x, (y * 5 + x) * 3, (y * 5 + x + 1) * 3);
  }
  const crop = centerCrop({ width: 5, height: 4, data }, 2, 2);
  assertEquals(Array.from(crop.data.filter((_, i) => i % 3 === 0)), [12, 13, 22, 23]);
  // top = round(0.5) = 0 (Python rounds halves to even)
  const crop2 = centerCrop({ width: 5, height: 4, data }, 5, 3);
  assertEquals(crop2.data[0], 0);
  assert.throws(
    () => centerCrop({ width: 5, height: 4, data }, 6, 2),
    including("larger than the 5×4 image"),
  );
});

async function makeFolder(root: string): Promise<void> {
  await Deno.mkdir(`${root}/b_dog`, { recursive: true });
  await Deno.mkdir(`${root}/a_cat`, { recursive: true });
  await Deno.copyFile(`${IMAGES}/rgb.png`, `${root}/b_dog/2.png`);
  await Deno.copyFile(`${IMAGES}/gray.jpg`, `${root}/b_dog/1.JPG`);
  await Deno.copyFile(`${IMAGES}/palette.png`, `${root}/a_cat/x.png`);
  await Deno.writeTextFile(`${root}/a_cat/notes.txt`, "not an image");
}

Deno.test("image folder: sorted classes and files, resize + center crop to one size", async () => {
  const root = await Deno.makeTempDir();
  try {
    await makeFolder(root);
    const dataset = await loadImageFolder(root, { resize: 16, crop: 16 });
    assertEquals(dataset.classes, ["a_cat", "b_dog"]);
    assertEquals(Array.from(dataset.labels), [0, 1, 1]);
    assertEquals([dataset.count, dataset.height, dataset.width], [3, 16, 16]);
    // Image 2 is b_dog/2.png: Pillow resize to 20×16, then crop columns 2..17; check one pixel (CHW).
    const reference = await pillowRgb(`${IMAGES}/rgb.png.resize_20x16.rgb`);
    const [y, x, c] = [5, 7, 1];
    assertEquals(
      dataset.images[2 * 768 + c * 256 + y * 16 + x],
      reference.data[(y * 20 + x + 2) * 3 + c],
    );
    // Without a transform the sizes must agree.
    const small = jpeg.encode(
      { width: 8, height: 6, data: new Uint8Array(8 * 6 * 4).fill(90) },
      90,
    );
    await Deno.writeFile(`${root}/b_dog/3.jpeg`, small.data);
    await assert.rejects(
      () => loadImageFolder(root),
      {
        message:
          `${root}/b_dog/3.jpeg is 8×6, but ${root}/a_cat/x.png is 37×29; give resize/crop options to bring images to one size`,
      },
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("list files: labels from the list, class names from folders, errors with line numbers", async () => {
  const root = await Deno.makeTempDir();
  try {
    await makeFolder(root);
    await Deno.writeTextFile(`${root}/list.txt`, "b_dog/2.png 1\na_cat/x.png 0\n\nb_dog/1.JPG 1\n");
    const dataset = await loadImageList(`${root}/list.txt`, root, { crop: [20, 10] });
    assertEquals(dataset.classes, ["a_cat", "b_dog"]);
    assertEquals(Array.from(dataset.labels), [1, 0, 1]);
    assertEquals([dataset.width, dataset.height], [20, 10]);

    await Deno.writeTextFile(`${root}/missing.txt`, "b_dog/2.png 1\nb_dog/404.png 1\n");
    await assert.rejects(
      () => loadImageList(`${root}/missing.txt`, root),
      { message: `${root}/missing.txt:2: image ${root}/b_dog/404.png not found` },
    );
    await Deno.writeTextFile(`${root}/bad.txt`, "b_dog/2.png\n");
    await assert.rejects(
      () => loadImageList(`${root}/bad.txt`, root),
      { message: `${root}/bad.txt:1: expected 'relative/path label', got 'b_dog/2.png'` },
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("corrupt images give one Error naming the file", async () => {
  const jpeg = await Deno.readFile(`${IMAGES}/rgb.jpg`);
  assert.throws(
    () => decodeImage(jpeg.subarray(0, 400), "cut.jpg"),
    including("cut.jpg: corrupt or unsupported JPEG"),
  );
  const png = await Deno.readFile(`${IMAGES}/rgb.png`);
  assert.throws(
    () => decodeImage(png.subarray(0, 300), "cut.png"),
    including("cut.png: corrupt or unsupported PNG"),
  );
  assert.throws(
    () => decodeImage(new TextEncoder().encode("GIF89a..."), "anim.gif"),
    { message: "anim.gif: not a JPEG or PNG file (unknown magic bytes)" },
  );
  const root = await Deno.makeTempDir();
  try {
    await makeFolder(root);
    await Deno.writeFile(`${root}/a_cat/y.png`, png.subarray(0, 300));
    await Deno.writeTextFile(`${root}/list.txt`, "a_cat/x.png 0\na_cat/y.png 0\n");
    await assert.rejects(
      () => loadImageList(`${root}/list.txt`, root),
      including(`${root}/list.txt:2: ${root}/a_cat/y.png: corrupt or unsupported PNG`),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
