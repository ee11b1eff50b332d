"""Channel connectors: Telegram, Slack, web chat, REST."""
