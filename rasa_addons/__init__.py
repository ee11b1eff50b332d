"""Code that runs INSIDE the Rasa server (.venv-rasa, Python 3.10), loaded by module path from
credentials.yml and endpoints.yml: the gateway never imports it and does not ship it.

Rasa finds it because it is started from the repository root (scripts/devctl.py), and Rasa puts
its working directory on ``sys.path``.
"""
