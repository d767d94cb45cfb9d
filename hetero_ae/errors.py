"""Errors that a user can act on: the CLI prints their message on one line and exits with 2."""


class UserError(Exception):
    """Bad input: a missing folder, an unreadable image, a checkpoint of another model."""


class DataError(UserError):
    """The data on disk is not what the loader expected."""


class CheckpointError(UserError):
    """A checkpoint is missing, corrupt, or belongs to another model."""


class TrainingDiverged(UserError, FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class ConfigError(UserError, ValueError):
    """A configuration value or hyper-parameter that the method does not know or accept."""
