"""Typed errors: each message says what went wrong and how to fix it."""


class DafxError(Exception):
    """Base class of every error dafxlib raises on purpose."""


class ConfigError(DafxError, ValueError):
    """Unknown profile, unknown override key or a value of the wrong type."""


class AudioError(DafxError, ValueError):
    """Unreadable, silent, too short, non-finite or wrongly shaped audio."""


class DatasetError(DafxError, FileNotFoundError):
    """A dataset folder is missing or does not have the expected layout."""


class EffectError(DafxError, ValueError):
    """Unknown effect or parameter, bad parameter vector, or a failing render."""


class PluginNotFoundError(EffectError):
    """A plugin (LV2, VST3/AU) or its host library is not installed."""


class MissingArtifactError(DafxError, FileNotFoundError):
    """An artifact that an earlier notebook writes is missing."""


class CorruptFileError(DafxError, ValueError):
    """A cache, checkpoint or archive on disk is damaged (truncated, bad CRC, not parseable)."""


class TrainingDivergedError(DafxError, FloatingPointError):
    """Training produced a non-finite loss or non-finite weights."""


class RenderPoolError(EffectError):
    """The render pool's worker processes keep dying before they render anything."""
