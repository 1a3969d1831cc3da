"""bnlab's PyTorch training core: nets with a BN layer, datasets, the training loop, telemetry probes.

The only package of bnlab that imports torch. Importing it does not initialize CUDA (workers fork after
importing it); a device is chosen only when `run` starts.
"""

from core.ml.training import run

__all__ = ["run"]
