"""The real-model zoo: Hugging Face architectures built from their config
classes with seeded random weights (no hub access), small enough for CI."""
