"""turnout: one gateway for hosted LLM APIs and locally deployed models.

Library mode::

    import turnout
    reply = turnout.predict("Hello")              # sync, default model
    reply = await turnout.apredict("Hello", model="chat", max_tokens=64)

Server: ``turnout serve`` (see ``turnout --help``).
"""

from turnout.config import Config, load_config
from turnout.exceptions import (
    BackendError,
    ClientError,
    ConfigError,
    InvalidRequest,
    ModelNotFound,
    TurnoutError,
)
from turnout.gateway import Gateway
from turnout.library import apredict, predict

__all__ = [
    "BackendError",
    "ClientError",
    "Config",
    "ConfigError",
    "Gateway",
    "InvalidRequest",
    "ModelNotFound",
    "TurnoutError",
    "__version__",
    "apredict",
    "load_config",
    "predict",
]

__version__ = "0.1.0"
