"""Custom actions of the Brightline assistant (rasa-sdk; runs in .venv-rasa)."""
