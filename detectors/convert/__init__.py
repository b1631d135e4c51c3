"""Converters that turn third-party model files into this project's safetensors + manifest."""
