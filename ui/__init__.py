"""The Gradio user interface over the assistant core."""
