"""One error hierarchy: the CLI catches WildposeError and prints one line per file."""

from __future__ import annotations

import os


class WildposeError(Exception):
    """A problem with one input or output, reported as ``<path>: <problem>``."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class VideoError(WildposeError):
    """The file is missing, is not a video, or cannot be decoded."""


class NoPersonError(WildposeError):
    """The video decoded but nobody was found in it."""


class FormatError(WildposeError):
    """A data file (npz, npy, safetensors, JSON, checkpoint) is malformed or refused."""


class ModelError(WildposeError):
    """A model file is missing, corrupt or does not match its checksum/config."""


class UsageError(WildposeError):
    """An option's value is not one wildpose knows (an unknown export format, say)."""
