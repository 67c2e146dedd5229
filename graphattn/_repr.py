"""The one repr rule of the layers: name every hyperparameter that differs from its default."""
from __future__ import annotations

from typing import Any, Tuple

__all__ = ['non_default_options']


def non_default_options(**options: Tuple[Any, Any]) -> str:
    """``', name=value'`` for every option whose value differs from its default, for reprs."""
    return ''.join(f', {name}={value!r}' for name, (value, default) in options.items()
                   if value != default)
