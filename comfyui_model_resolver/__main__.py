"""`python -m comfyui_model_resolver …` runs the `cmr` command line."""
import sys

from .adapters.cli import main

sys.exit(main())
