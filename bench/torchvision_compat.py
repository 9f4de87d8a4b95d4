"""Import torchvision even where its compiled ops do not match the installed torch.

A CUDA build of torchvision on a CPU build of torch fails at import with ``operator torchvision::nms does not
exist``: its Python registers fake kernels for ops whose schemas live in the missing C++ library. Defining the
two schemas it needs lets the pure-Python parts (datasets, transforms, utils) import; the ops themselves stay
unavailable. This is done only after a plain import fails that way, so a working install is never touched.
"""

from __future__ import annotations

import sys
from types import ModuleType

import torch

_MISSING_OP = "operator torchvision::nms does not exist"
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_fragment: torch.library.Library | None = None  # kept alive: dropping the Library object drops the schemas


def import_torchvision() -> ModuleType:
    """`import torchvision`, defining the missing op schemas first only when the plain import fails for lack of them."""
    global _fragment
    try:
        import torchvision
    except RuntimeError as error:
        if _MISSING_OP not in str(error):
            raise
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]  # the failed import left half-initialised modules behind
        _fragment = torch.library.Library("torchvision", "DEF")
        for schema in _SCHEMAS:
            _fragment.define(schema)
        import torchvision
    return torchvision
