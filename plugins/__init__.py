"""The built-in backbones, losses and optimizers, registered through the public hooks."""
