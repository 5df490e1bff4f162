"""Hugging Face Space entry point: the same app as ``python -m ui``, bound as a Space expects."""

import atexit
import os

from assistant.composition import build_workspaces, configure_environment
from assistant.lifecycle import stop_on_sigterm
from assistant.settings import settings_or_exit

settings = settings_or_exit()
if os.environ.get("SPACE_ID"):  # on a Space the container must listen on all interfaces
    settings = settings.model_copy(update={"ui": settings.ui.model_copy(update={"host": "0.0.0.0"})})
configure_environment(settings)

from assistant.errors import ConfigurationError  # noqa: E402
from ui.app import check_binding, create_app, launch  # noqa: E402  (gradio after the environment is set)

try:  # a Space is public: it needs ASSISTANT_AUTH__MODE=huggingface (or anonymous, a demo for everyone)
    check_binding(settings)
except ConfigurationError as exc:
    raise SystemExit(f"error: {exc}") from None

workspaces = build_workspaces(settings)
atexit.register(workspaces.close)  # also when a host imports this module and serves ``demo`` itself
demo = create_app(workspaces, settings)

if __name__ == "__main__":
    stop_on_sigterm()
    try:
        launch(demo, settings)
    except KeyboardInterrupt:
        pass
