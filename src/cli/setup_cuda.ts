/** `setup-cuda`: install the CUDA execution provider and check the libraries it needs. */
import type { Command } from "./commands.ts";
import { ortNativeDir } from "../runtime/providers.ts";
import {
  checkCudaLibraries,
  formatLibraryReport,
  GPU_PROVIDER_SPEC,
  installCudaProvider,
  PIP_INSTALL_LINE,
} from "../runtime/cuda_setup.ts";
import { probeCudaSession } from "../runtime/device.ts";

/** The setup-cuda command. */
export const setupCudaCommand: Command = {
  name: "setup-cuda",
  summary:
    `install the CUDA provider (${GPU_PROVIDER_SPEC}, CUDA 13 + cuDNN 9) and check its libraries`,
  usage: "[--from DIR] [--check] [--python PATH]",
  options: {
    from: {
      type: "string",
      description:
        "offline source: the package .tgz, a folder holding it, or a folder with the two .so files",
    },
    check: {
      type: "boolean",
      description: "only check the installed provider and its libraries",
      default: false,
    },
    python: {
      type: "string",
      multiple: true,
      description: "also search this Python's site-packages/nvidia/*/lib (repeatable)",
    },
    dest: { type: "string", description: "install folder (default: beside libonnxruntime.so.1)" },
    "no-probe": {
      type: "boolean",
      description: "skip the final check that creates a one-node CUDA session (needs a GPU)",
      default: false,
    },
  },
  async run(args) {
    const dest = (args.values.dest as string | undefined) ?? ortNativeDir();
    if (!args.values.check) {
      await installCudaProvider({
        from: args.values.from as string | undefined,
        dest,
        log: (line) => console.log(line),
      });
    }
    const report = await checkCudaLibraries({
      providerDir: dest,
      pythons: (args.values.python as string[] | undefined) ?? [],
    });
    const resolved = report.checks.filter((c) => c.status === "loader").length;
    console.log(`${report.checks.length} libraries checked: ${resolved} found by the loader`);
    const lines = formatLibraryReport(report);
    for (const line of lines) console.error(line);
    if (report.missing.length > 0) {
      console.error(`all but the driver install with: ${PIP_INSTALL_LINE}`);
      console.error(
        `error: ${report.missing.length} required librar${
          report.missing.length === 1 ? "y" : "ies"
        } missing`,
      );
      return 1;
    }
    if (report.ldLibraryPathAdditions.length > 0) {
      console.error(
        "error: set LD_LIBRARY_PATH as above, then run `deno task setup-cuda --check` again",
      );
      return 1;
    }
    // ORT loads the provider from its own folder only, so a probe proves nothing for another --dest.
    if (!args.values["no-probe"] && dest === ortNativeDir()) {
      try {
        await probeCudaSession();
        console.log("a CUDA session was created and ran: --device cuda is ready");
      } catch (e) {
        console.error(
          `error: the libraries resolve but a CUDA session failed: ${(e as Error).message}`,
        );
        return 1;
      }
    } else {
      console.log("the CUDA provider's libraries all resolve");
    }
    return 0;
  },
};
