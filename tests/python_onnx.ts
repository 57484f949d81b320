/** Whether Debian's python3-onnx (onnx 1.12, for tools/check_onnx.py) can be used here. */

/** The interpreter with python3-onnx (and python3-torch for the golden generators). */
export const PYTHON = "/usr/bin/python3";

/** True when `PYTHON` imports onnx; checked once, synchronously, so tests can set `ignore`. */
export const pythonOnnxAvailable: boolean = (() => {
  try {
    return new Deno.Command(PYTHON, {
      args: ["-c", "import onnx"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
})();
