#!/usr/bin/env bash
# Optional Python peers for cross-checks (never a package dependency):
#   jax==0.10.2 + jaxlib==0.10.2 + numpy  -> test/xla-*.test.ts (XLA's CPU compiler runs our StableHLO)
#   torch (CPU) + safetensors + pillow    -> PyTorch parity tests, Pillow rotation cross-check
# Installed offline from the machine's local wheel mirror when it has them. Best effort, bounded
# time: this script always exits 0; tests that need a missing peer skip and print why.
set -u
PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "optional-python: no $PY; the jax/torch cross-checks will skip"
  exit 0
fi
have() { "$PY" -c "$1" >/dev/null 2>&1; }
install() {
  # No network beyond the configured mirror: --no-input, a short per-request timeout, one retry.
  timeout 300 "$PY" -m pip install --disable-pip-version-check --no-input --retries 1 --timeout 30 "$@" 2>&1 | tail -3 || true
}
if have 'import jax, jaxlib, numpy; assert jax.__version__ == "0.10.2" and jaxlib.__version__ == "0.10.2"'; then
  echo "optional-python: jax/jaxlib 0.10.2 already installed"
else
  install "jax==0.10.2" "jaxlib==0.10.2" numpy
fi
if have 'import torch, safetensors, PIL'; then
  echo "optional-python: torch, safetensors, pillow already installed"
else
  install torch safetensors pillow
fi
have 'import jax' && echo "optional-python: jax $("$PY" -c 'import jax; print(jax.__version__)') available" || echo "optional-python: jax unavailable; test/xla-*.test.ts will skip"
have 'import torch' && echo "optional-python: torch available" || echo "optional-python: torch unavailable; torch parity tests will skip"
exit 0
