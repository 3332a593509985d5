"""The web face: the built single-page app served at ``/``, and the OpenAPI dump for its client."""
