"""tfvae: Auto-Encoding Variational Bayes (Kingma & Welling, 2013) in TensorFlow 2 / Keras 3."""

__version__ = '0.1.0'
