"""The wire format of the HTTP API: request and response models, one module per route module."""
