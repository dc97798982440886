"""minivae: a small variational-autoencoder engine on NumPy and HIPS autograd."""

__version__ = "0.1.0"
