import importlib
from pathlib import Path

import pytest

PACKAGES = ["prefactor_http", "prefactor_core", "prefactor_local", "prefactor_integrations"]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_package_is_typed_and_shares_one_version(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert (Path(module.__file__).parent / "py.typed").exists()
    from prefactor_http._version import __version__

    assert module.__version__ == __version__
