"""Typed errors. Each carries a message written for the person using the app; boundaries (UI, CLI)
show that message. Anything that is not an ``AssistantError`` is a bug and surfaces as one."""


class AssistantError(Exception):
    """Base of every deliberate failure."""


class ConfigurationError(AssistantError):
    """A setting (an ``ASSISTANT_*`` variable) has a value the app cannot use; the message names it."""


class ModelLoadError(AssistantError):
    """The vision-language model could not be loaded; the message names the checkpoint and the fix."""


class GenerationError(AssistantError):
    """Generation failed in a way the user can act on (out of memory, for example)."""


class InputError(AssistantError):
    """Something the user supplied cannot be used (an unreadable image, an empty question)."""


class KnowledgeError(AssistantError):
    """The knowledge base refused or failed an operation."""
