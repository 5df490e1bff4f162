"""``python -m ui``: build everything from the settings and serve the app."""

import logging

from assistant.composition import build_workspaces, configure_environment
from assistant.lifecycle import stop_on_sigterm
from assistant.settings import settings_or_exit


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_or_exit()
    configure_environment(settings)  # before gradio or transformers are imported
    from assistant.accounts import sign_in_for
    from assistant.errors import ConfigurationError
    from ui.app import check_binding, create_app, launch

    try:
        check_binding(settings)  # no sign-in on an address others reach stops here, before anything loads
        sign_in_for(settings)  # a sign-in nobody could pass stops here too
    except ConfigurationError as exc:
        raise SystemExit(f"error: {exc}") from None
    stop_on_sigterm()
    workspaces = build_workspaces(settings)
    try:
        launch(create_app(workspaces, settings), settings)  # returns on Ctrl-C or SIGTERM
    except KeyboardInterrupt:
        pass  # a signal that arrived before the server was blocking
    finally:
        workspaces.close()
        logging.getLogger("ui").info("stopped; the knowledge base was closed cleanly")


if __name__ == "__main__":
    main()
