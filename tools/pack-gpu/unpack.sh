#!/usr/bin/env bash
# Unpacks the contrastive-onnx GPU bundle written by `deno task pack-gpu`
# (__ARCH__) on a host without internet: checks the parts, reassembles them,
# puts the CUDA provider beside libonnxruntime.so.1 and prints the command to run.
#
#   bash unpack.sh [TARGET_DIR]        (default __DEFAULT_TARGET__)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
target="${1:-__DEFAULT_TARGET__}"
parts=(__PARTS__)
ort_dir="__ORT_DIR__"

for tool in xz tar sha256sum; do
  command -v "$tool" >/dev/null || { echo "error: $tool is needed to unpack" >&2; exit 1; }
done
for part in "${parts[@]}"; do
  [ -f "$here/$part" ] || { echo "error: missing part $here/$part (copy all ${#parts[@]} parts)" >&2; exit 1; }
done
(cd "$here" && sha256sum --check --quiet SHA256SUMS) ||
  { echo "error: a part is damaged (SHA256SUMS does not match); copy it again" >&2; exit 1; }

mkdir -p "$target"
target="$(cd "$target" && pwd)"
(cd "$here" && cat "${parts[@]}") | xz --decompress --stdout | tar --extract --file=- --directory="$target"

if [ ! -f "$target/$ort_dir/libonnxruntime.so.1" ]; then
  echo "error: $target/$ort_dir/libonnxruntime.so.1 is missing: the bundle is incomplete" >&2
  exit 1
fi
mv -f "$target"/providers/*.so "$target/$ort_dir/"
rmdir "$target/providers"
echo "unpacked into $target; CUDA provider installed in $ort_dir"

# CUDA 13 / cuDNN 9 from pip wheels live in site-packages/nvidia/*/lib, which
# the loader does not search: collect them for LD_LIBRARY_PATH.
lib_dirs=()
for python in python3 /usr/bin/python3 /opt/*/.venv/bin/python3; do
  command -v "$python" >/dev/null 2>&1 || continue
  while IFS= read -r site; do
    for dir in "$site"/nvidia/*/lib; do
      [ -d "$dir" ] || continue
      case " ${lib_dirs[*]-} " in *" $dir "*) ;; *) lib_dirs+=("$dir") ;; esac
    done
  done < <("$python" -c 'import site; print("\n".join(site.getsitepackages()))' 2>/dev/null || true)
done

prefix=""
if [ "${#lib_dirs[@]}" -gt 0 ]; then
  joined="$(IFS=:; echo "${lib_dirs[*]}")"
  prefix="LD_LIBRARY_PATH=$joined\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH} "
  echo "found CUDA libraries from pip in: ${lib_dirs[*]}"
fi
echo "check the GPU set-up, then run:"
echo "  cd $target && ${prefix}./bin/deno run -A mod.ts setup-cuda --check"
echo "  cd $target && ${prefix}./bin/deno run -A mod.ts quickstart --device cuda"
