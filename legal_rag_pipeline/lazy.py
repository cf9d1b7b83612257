"""Package attributes imported on first use (PEP 562), so that importing one light module of a package
does not import the heavy ones beside it: a cold `legal-rag search` imports ``readers.limits`` and
``text.lexical`` and none of the readers or the chunker."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_attributes(package: str, module_of: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``module_of[name]`` (a submodule) on first use."""

    def __getattr__(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f"{package}.{module}"), name)

    return __getattr__
