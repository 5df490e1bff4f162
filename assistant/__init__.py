"""The assistant's core: settings, chat types, the answer pipeline, model backends, the CLI.

Nothing here imports Gradio, reads the environment or loads a model at import time.
"""
