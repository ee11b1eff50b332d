"""The demo backend's read-only customer overview (the console's customer profile shows it)."""

from __future__ import annotations

from datetime import date

from actions import backend


def test_overview_of_a_customer_with_orders_devices_and_a_repair() -> None:
    today = date.today()
    devices = backend.customer_overview(1)
    assert devices is not None
    serial = devices["devices"][0]["serial"]
    reference, _pickup, covered = backend.book_repair(serial, today)
    found = backend.customer_overview(1, today)
    assert found is not None
    assert found["customer"] == {"id": 1, "name": "Maya Patel", "vip": found["customer"]["vip"]}
    numbers = [o["number"] for o in found["orders"]]
    assert {"1001", "1005"} <= set(numbers)
    first = found["orders"][0]
    assert set(first) == {
        "number",
        "status",
        "placed_on",
        "expected_on",
        "delivered_on",
        "total",
        "items",
        "refund_status",
    }
    assert found["devices"][0]["serial"] == serial
    assert found["devices"][0]["under_warranty"] is backend.get_device(serial).under_warranty(today)  # type: ignore[union-attr]
    assert found["repairs"] == [
        {
            "reference": reference,
            "serial": serial,
            "booked_on": today.isoformat(),
            "pickup_on": found["repairs"][0]["pickup_on"],
            "under_warranty": covered,
        }
    ]


def test_an_unknown_customer_has_no_overview() -> None:
    assert backend.customer_overview(999_999) is None
