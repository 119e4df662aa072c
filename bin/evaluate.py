#!/usr/bin/env python
"""bin/evaluate.py: the tfvae-evaluate tool (see tfvae/cli/evaluate.py, or run it with --help)."""

from tfvae.cli import evaluate

if __name__ == '__main__':
  evaluate.run()
