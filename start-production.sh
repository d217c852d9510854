#!/usr/bin/env bash
# Start the ComfyUI Model Resolver for production: the HTTP API on CMR_API_PORT (5002) and, when
# CMR_ENABLE_UI is on and gradio is installed, the Gradio UI on CMR_GRADIO_PORT (5001), also mounted
# at /gradio on the API port. One process, one Resolver; JSON logs at CMR_LOG_LEVEL.
#
#   ./start-production.sh                 # settings from CMR_* variables, ./.env or CMR_CONFIG
#   ./start-production.sh --no-ui         # any `cmr serve` option
#
# The configuration is checked first (exit 2 with the reason if it is wrong; beyond loopback
# CMR_API_KEY is required). SIGTERM or SIGINT stops the UI and the API cleanly, and the script
# exits 0. PYTHON picks the interpreter (default: ./.venv/bin/python if present, else python3).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$HERE/.venv/bin/python" ]; then PYTHON="$HERE/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
export GRADIO_ANALYTICS_ENABLED="${GRADIO_ANALYTICS_ENABLED:-False}"
export CMR_LOG_LEVEL="${CMR_LOG_LEVEL:-INFO}"

"$PYTHON" -m comfyui_model_resolver serve --check "$@" >/dev/null
# exec: the server gets SIGTERM directly and shuts both servers down before exiting 0.
exec "$PYTHON" -m comfyui_model_resolver serve "$@"
