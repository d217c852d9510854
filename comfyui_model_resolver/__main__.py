"""`python -m comfyui_model_resolver ...` is the `cmr` command (for environments without the script)."""
import sys

from .adapters.cli import main

sys.exit(main())
