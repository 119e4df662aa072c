"""tfvae: Auto-Encoding Variational Bayes in TensorFlow 2, in the style of MusicVAE."""

import setuptools

setuptools.setup(
    name='tfvae',
    version='0.1.0',
    description='Auto-Encoding Variational Bayes (Kingma & Welling) in TensorFlow 2 / Keras 3',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    # configs/ is top level in the source tree but installs as tfvae.configs, so no
    # top-level package named `configs` lands in site-packages.
    packages=['tfvae', 'tfvae.cli', 'tfvae.configs', 'tfvae.sources'],
    package_dir={'tfvae': 'tfvae', 'tfvae.configs': 'configs'},
    entry_points={'console_scripts': [
        f'tfvae-{tool}=tfvae.cli.{tool}:run'
        for tool in ('train', 'evaluate', 'sample', 'export', 'cache')
    ]},
    install_requires=[
        'tensorflow==2.21.0',
        'tensorflow-probability==0.25.0',
        'tf-keras==2.21.0',            # TFP 0.25 refuses to import without it
        'keras==3.15.1',
        'tensorboard==2.21.0',         # tf.summary needs it; TF 2.21 no longer pulls it in
        'tensorflow-datasets==4.9.10',
        'importlib_resources>=6',      # tensorflow-datasets' download path needs it
        'absl-py>=2.1',
        'numpy>=1.26,<3',
        'scipy>=1.11',                 # Frey Face's .mat file
        'matplotlib==3.11.2',          # figures: the latent scatter, the paper's figure 2
    ],
    extras_require={'test': ['pytest>=8', 'pytest-xdist>=3.5']},
)
