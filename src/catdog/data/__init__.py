"""Data: the image folders or archive, decoded once into train, validation and test splits."""
