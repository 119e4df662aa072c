"""tfvae: Auto-Encoding Variational Bayes (Kingma & Welling, 2013) in TensorFlow 2 / Keras 3."""

# First, before anything imports TensorFlow: its start-up chatter stays out of the terminal.
from tfvae import quiet

quiet.install()

__version__ = '0.1.0'


def __getattr__(name):
  """`tfvae.TrainedModel`, `tfvae.train` and `tfvae.keras_model`, imported on first use so
  that `import tfvae` stays light."""
  if name == 'TrainedModel':
    from tfvae.trained_model import TrainedModel  # pylint: disable=import-outside-toplevel
    return TrainedModel
  if name == 'train':
    from tfvae.api import train  # pylint: disable=import-outside-toplevel
    return train
  if name == 'keras_model':
    from tfvae.keras_vae import keras_model  # pylint: disable=import-outside-toplevel
    return keras_model
  raise AttributeError(f'module tfvae has no attribute {name!r}')
