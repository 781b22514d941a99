# shellcheck shell=bash
# Sourced by the scripts of a psyrun GPU bundle (made by `./dev bundle`): finds the libtorch of
# this machine's PyTorch and makes the bundle's binaries load it.
#   PSYRUN_TORCH_LIB   a PyTorch's torch/lib folder (else the torch of PSYRUN_PYTHON, else python3)
# The PyTorch must be the version the bundle was built for (build.env: LIBTORCH_VERSION).
BUNDLE="${BUNDLE:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
# shellcheck source=/dev/null
. "$BUNDLE/build.env"
bundle_die() {
    printf 'psyrun bundle: %s\n' "$*" >&2
    exit 1
}
if [[ -z "${PSYRUN_TORCH_LIB:-}" ]]; then
    _py="${PSYRUN_PYTHON:-python3}"
    PSYRUN_TORCH_LIB="$("$_py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)" ||
        bundle_die "no PyTorch found: '$_py' cannot import torch; set PSYRUN_TORCH_LIB to the torch/lib folder of a PyTorch $LIBTORCH_VERSION, or PSYRUN_PYTHON to a python that imports it"
fi
[[ -f "$PSYRUN_TORCH_LIB/libtorch_cpu.so" ]] ||
    bundle_die "$PSYRUN_TORCH_LIB holds no libtorch_cpu.so (PSYRUN_TORCH_LIB must be a PyTorch's torch/lib folder)"
# The version of that libtorch: a wheel's version.py, or a libtorch zip's build-version.
_root="$(dirname "$PSYRUN_TORCH_LIB")"
if [[ -f "$_root/version.py" ]]; then
    _found="$(sed -n "s/^__version__ *= *['\"]\([^'\"+]*\).*/\1/p" "$_root/version.py")"
elif [[ -f "$_root/build-version" ]]; then
    _found="$(sed 's/+.*//' "$_root/build-version")"
else
    _found=unknown
fi
[[ "$_found" == "$LIBTORCH_VERSION" ]] ||
    bundle_die "this bundle was built for libtorch $LIBTORCH_VERSION, but $PSYRUN_TORCH_LIB is libtorch $_found; make a bundle for it where Rust is installed: PSYRUN_LIBTORCH=$_found ./dev bundle"
[[ -f "$PSYRUN_TORCH_LIB/libtorch_cuda.so" ]] ||
    bundle_die "$PSYRUN_TORCH_LIB has no libtorch_cuda.so: the bundle needs a CUDA build of PyTorch (the CPU-only wheel has none)"
export PSYRUN_TORCH_LIB
export LD_LIBRARY_PATH="$PSYRUN_TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The libtorch-linked executables travel gzipped: BUNDLE_EXEC is where they are unpacked on
# first use, outside the bundle so that it stays as small as it came (each to a temporary
# name, then renamed, so processes starting together never run half a file).
BUNDLE_EXEC="${TMPDIR:-/tmp}/psyrun-bundle-$LIBTORCH_VERSION-${BUILT_AT//[^0-9A-Za-z]/}"
while IFS= read -r -d '' _gz; do
    _exe="$BUNDLE_EXEC/${_gz#"$BUNDLE/libexec/"}"
    _exe="${_exe%.gz}"
    [[ -x "$_exe" ]] && continue
    mkdir -p "$(dirname "$_exe")" && gzip -dc "$_gz" >"$_exe.$$" && chmod +x "$_exe.$$" &&
        mv -f "$_exe.$$" "$_exe" || bundle_die "cannot unpack $_gz into $BUNDLE_EXEC"
done < <(find "$BUNDLE/libexec" -name '*.gz' -print0)
export BUNDLE_EXEC
unset _py _root _found _gz _exe
