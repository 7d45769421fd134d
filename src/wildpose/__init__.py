"""wildpose: videos of people in, tracked 3D human motion out."""

__version__ = "0.1.0"
