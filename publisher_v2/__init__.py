"""publisher_v2: pick a photo, caption it, publish it everywhere, archive it."""

__version__ = "2.0.0"
