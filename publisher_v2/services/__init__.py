"""Adapters behind protocols: storage, AI, publishers, sidecars. Production SDKs are imported lazily."""
