/**
 * GPU memory of a process as nvidia-smi reports it (CUDA context included):
 * onnxruntime-node offers no way to ask the CUDA provider's allocator, so the
 * bench reads the driver's per-process figure after each run; the reference
 * script reads the same figure for torch, so both include their context.
 */

/** Bytes nvidia-smi reports `pid` using on the GPU; null where nvidia-smi is missing or lists no such process. */
export function deviceMemoryBytes(pid: number): number | null {
  let text: string;
  try {
    const out = new Deno.Command("nvidia-smi", {
      args: ["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    if (!out.success) return null;
    text = new TextDecoder().decode(out.stdout);
  } catch {
    return null;
  }
  return deviceMemoryFromSmi(text, pid);
}

/** The MiB figure of `pid` in nvidia-smi's `pid, used_memory` CSV lines, in bytes; null if absent. */
export function deviceMemoryFromSmi(csv: string, pid: number): number | null {
  for (const line of csv.trim().split("\n")) {
    const [p, mib] = line.split(",").map((f) => f.trim());
    if (Number(p) === pid && Number.isFinite(Number(mib))) return Number(mib) * 2 ** 20;
  }
  return null;
}
