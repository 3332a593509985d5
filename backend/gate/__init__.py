"""The gate in the application: wiring, hot reload, training jobs, feedback, admin API."""
