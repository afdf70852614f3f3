"""The ground floor: what an image, an analysis, a post and a failure ARE (models, errors, captions).

Imports nothing of publisher_v2 outside this package, so every floor may stand on it."""
