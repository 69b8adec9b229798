"""The kernel's own interceptors: the effect log (outermost) and retry (innermost)."""

from .effect_log import EffectLog
from .retrying import Retrying

__all__ = ["EffectLog", "Retrying"]
