"""Fakes of the outside services the gateway talks to (the Telegram Bot API, Slack's Web API):
real HTTP servers on local ports that record every call and can be told to fail."""
