"""`python -m uvicorn api.main:app --host 0.0.0.0 --port 5002`, the deploy spec's command: the sidecar app."""
from sidecar.main import app  # noqa: F401  (built from CMR_* settings, a key made if none: sidecar/startup.py)
