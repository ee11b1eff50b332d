"""Developer tooling (devctl: setup, training cache, process supervision)."""
