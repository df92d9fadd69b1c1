"""HDF5 recordings: the streaming writer and a lazy reader."""
from .reader import Recording, open_recording
from .recorder import FILENAME, SCHEMA_VERSION, Recorder

__all__ = ["FILENAME", "SCHEMA_VERSION", "Recorder", "Recording", "open_recording"]
