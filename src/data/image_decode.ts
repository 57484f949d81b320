/**
 * JPEG and PNG decoding to RGB with pure-JS decoders (jpeg-js, pngjs), converting the way
 * torchvision's loader does with Pillow's `.convert('RGB')`: grayscale replicated, alpha dropped
 * (not composited), palettes expanded, Adobe CMYK → RGB. The format is sniffed from the bytes, not
 * the file name (ImageNet has PNG data in a .JPEG file).
 */

import { Buffer } from "node:buffer";
import jpeg from "jpeg-js";
// @ts-types="@types/pngjs"
import pngjs from "pngjs";

/** A decoded image: height × width × 3 bytes, row-major RGB (HWC). */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length > 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

function isPng(bytes: Uint8Array): boolean {
  const magic = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  return bytes.length > 8 && magic.every((b, i) => bytes[i] === b);
}

function decodeJpeg(bytes: Uint8Array, source: string): RgbImage {
  try {
    // formatAsRGBA false: RGB out for 1, 3 and 4 (Adobe CMYK/YCCK) components alike; its CMYK
    // formula equals Pillow's up to truncation (off by at most 1).
    const decoded = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      // Strict like Pillow: a truncated or corrupt file is an error, not a grey block.
      tolerantDecoding: false,
      maxMemoryUsageInMB: 2048,
    });
    return { width: decoded.width, height: decoded.height, data: decoded.data as Uint8Array };
  } catch (error) {
    throw new Error(`${source}: corrupt or unsupported JPEG (${(error as Error).message})`);
  }
}

function decodePng(bytes: Uint8Array, source: string): RgbImage {
  let decoded;
  try {
    decoded = pngjs.PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (error) {
    throw new Error(`${source}: corrupt or unsupported PNG (${(error as Error).message})`);
  }
  const { width, height } = decoded;
  const pixels = width * height;
  const data = new Uint8Array(pixels * 3);
  const src = decoded.data;
  for (let i = 0; i < pixels; i++) {
    data[3 * i] = src[4 * i];
    data[3 * i + 1] = src[4 * i + 1];
    data[3 * i + 2] = src[4 * i + 2];
  }
  return { width, height, data };
}

/** Decodes a JPEG or PNG file's bytes to RGB; `source` names the file in errors. */
export function decodeImage(bytes: Uint8Array, source: string): RgbImage {
  if (isJpeg(bytes)) return decodeJpeg(bytes, source);
  if (isPng(bytes)) return decodePng(bytes, source);
  throw new Error(`${source}: not a JPEG or PNG file (unknown magic bytes)`);
}
