#!/usr/bin/env bash
# Set up (or update) the project in ./.venv.  Usage: bash scripts/install.sh [test]
#   RAG_TORCH_SPEC  the torch requirement installed when torch is missing (default: torch==2.13.0;
#                   on Linux without a GPU you may prefer the CPU build from download.pytorch.org)
#   RAG_VENV        where the virtual environment goes (default: .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${RAG_VENV:-.venv}"
python="${PYTHON:-python3}"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip)
"${pip[@]}" install -q --upgrade pip
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  echo "installing ${RAG_TORCH_SPEC:-torch==2.13.0} ..." >&2
  "${pip[@]}" install -q "${RAG_TORCH_SPEC:-torch==2.13.0}"
fi
# Some virtual machines report Intel AMX in CPUID without enabling it, and a native llama.cpp build
# then dies with "Illegal instruction" on its first token. AMX only speeds up a few quantisations
# on server CPUs, so x86-64 builds leave it out (set CFLAGS/CXXFLAGS yourself to decide otherwise).
if [ "$(uname -m)" = "x86_64" ] && [ -z "${CFLAGS:-}${CXXFLAGS:-}" ] \
   && echo 'int main(void){return 0;}' | "${CC:-cc}" -mno-amx-tile -mno-amx-int8 -mno-amx-bf16 -x c - -o /dev/null 2>/dev/null; then
  export CFLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" CXXFLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
fi
extras=""
[ "${1:-}" = "test" ] && extras="[test]"
echo "installing rag$extras (llama-cpp-python compiles on first install: ~5 minutes on 2 cores) ..." >&2
"${pip[@]}" install -q ".$extras"
can_apt() { command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; }
has_pack() { command -v tesseract >/dev/null 2>&1 && tesseract --list-langs 2>/dev/null | grep -qx "$1"; }
if ! has_pack eng || { [ "${1:-}" = "test" ] && ! has_pack deu; }; then
  # scanned PDFs and pictures are read with Tesseract (the tests read a German scan too)
  packs="tesseract-ocr"
  [ "${1:-}" = "test" ] && packs="$packs tesseract-ocr-deu"
  if can_apt; then
    echo "installing Debian's $packs for scanned documents ..." >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packs >/dev/null
  else
    echo "note: Tesseract is not installed; scanned PDFs and pictures will be skipped (needs-ocr) until it is: apt-get install tesseract-ocr, or brew install tesseract" >&2
  fi
fi
if [ "${1:-}" = "test" ] && ! command -v chromium >/dev/null 2>&1; then
  # the browser tests drive Debian's Chromium (never a downloaded browser)
  if can_apt; then
    echo "installing Debian's chromium for the browser tests ..." >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: chromium is not installed; the browser tests will be skipped (apt-get install chromium)" >&2
  fi
fi
echo "ready: $venv/bin/rag --help" >&2
