"""Models: the variants as plain functions of the `model` config, and the backbone cut for fine-tuning."""
