"""The public surface of ``import turnout``."""

from __future__ import annotations

import importlib.metadata

import turnout
from turnout import exceptions

EXPECTED = {
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
}


def test_all_is_exactly_the_public_names() -> None:
    assert set(turnout.__all__) == EXPECTED
    assert len(turnout.__all__) == len(EXPECTED)  # no duplicates


def test_every_public_name_is_importable() -> None:
    namespace: dict[str, object] = {}
    exec("from turnout import *", namespace)  # the point of the test
    for name in EXPECTED:
        assert getattr(turnout, name) is namespace[name]


def test_error_classes_are_the_hierarchy() -> None:
    for name in ("BackendError", "ClientError", "ConfigError", "InvalidRequest", "ModelNotFound"):
        cls = getattr(turnout, name)
        assert cls is getattr(exceptions, name)
        assert issubclass(cls, turnout.TurnoutError)
    assert issubclass(turnout.InvalidRequest, turnout.ClientError)
    assert issubclass(turnout.ModelNotFound, turnout.ClientError)


def test_version_matches_the_installed_distribution() -> None:
    assert turnout.__version__ == importlib.metadata.version("turnout")


def test_callables() -> None:
    assert callable(turnout.predict) and callable(turnout.load_config)
    assert turnout.apredict.__module__ == "turnout.library"
    assert turnout.Gateway.__module__ == "turnout.gateway"
