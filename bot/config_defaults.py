"""Defaults of gateway.yml too long to sit in bot/config.py: the wrap-up's dispositions (what a
problem really was, picked by the agent at resolve; ``intents``: the bot's intents that
preselect it; docs/console.md)."""

from __future__ import annotations

from typing import Any

DEFAULT_DISPOSITIONS: list[dict[str, Any]] = [
    dict(
        name="order_status",
        title="Where is my order",
        intents=["order_status", "delivery_options"],
    ),
    dict(name="delivery_problem", title="Delivery problem", intents=["delivery_problem"]),
    dict(
        name="order_change",
        title="Change or cancel an order",
        intents=["cancel_order", "change_order", "change_shipping_address"],
    ),
    dict(
        name="return_refund",
        title="Return or refund",
        intents=["return_request", "refund_status", "refund_policy", "cancellation_policy"],
    ),
    dict(
        name="payment",
        title="Payment or invoice",
        intents=["payment_problem", "payment_methods", "invoice"],
    ),
    dict(
        name="warranty_repair",
        title="Warranty or repair",
        intents=["warranty_check", "repair_booking"],
    ),
    dict(
        name="technical_problem",
        title="Technical problem",
        intents=["troubleshoot_sound", "troubleshoot_wifi"],
    ),
    dict(
        name="account",
        title="Account or password",
        intents=[
            "password_reset",
            "account_create",
            "account_edit",
            "account_delete",
            "account_switch",
            "newsletter",
        ],
    ),
    dict(name="product_question", title="Product question", intents=["product_info"]),
    dict(name="complaint", title="Complaint", intents=["complaint", "feedback"]),
    dict(name="other", title="Something else"),
]
