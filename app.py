"""Hugging Face Space entry point: the same app as ``python -m ui``, bound as a Space expects."""

import os

from assistant.composition import build_pipeline, configure_environment
from assistant.settings import settings_or_exit

settings = settings_or_exit()
if os.environ.get("SPACE_ID"):  # on a Space the container must listen on all interfaces
    settings = settings.model_copy(update={"ui": settings.ui.model_copy(update={"host": "0.0.0.0"})})
configure_environment(settings)

from ui.app import create_app, launch  # noqa: E402  (gradio after the environment is set)

demo = create_app(build_pipeline(settings), settings)

if __name__ == "__main__":
    launch(demo, settings)
