"""Device targets (one TOML per device) and the runners that reach them, each in one registry."""
