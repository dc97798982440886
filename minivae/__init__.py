"""minivae: a small variational-autoencoder engine on NumPy and HIPS autograd.

Keep a trained model with ``minivae.save_params(path, params)`` and get it back, bit for bit, with
``minivae.load_params(path)`` (an ``.npz`` of the arrays, no pickles, the nest's structure as JSON).
"""

from minivae.checkpoint import load_params, save_params

__all__ = ["load_params", "save_params"]
__version__ = "0.1.0"
