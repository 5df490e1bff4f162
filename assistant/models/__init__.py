"""Vision-language model backends behind one small protocol."""

from assistant.models.base import LazyModel, VisionChatModel

__all__ = ["LazyModel", "VisionChatModel"]
