"""Brightline's demo backend: customers, products, orders, devices and repairs in SQLite.

The custom actions read and write it the way they would call a real order system. The data is
created by ``python -m actions.backend seed``; dates are relative to the seed day so that delivery
estimates and return windows stay meaningful whenever the demo runs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = REPO_ROOT / "var" / "demo_backend.sqlite3"
RETURN_WINDOW_DAYS = 30
# Wrong second factors (see check_second_factor), counted over VERIFICATION_LOCK_HOURS across all
# conversations: after MAX_VERIFICATION_FAILURES for one customer, postcodes are no longer
# checked for them (their e-mail address still is, so a stranger cannot lock them out); after
# MAX_ANSWER_FAILURES with one answer, whoever the order belongs to, that answer is refused (one
# postcode tried against every order number gets nowhere).
MAX_VERIFICATION_FAILURES = 6
MAX_ANSWER_FAILURES = 5
VERIFICATION_LOCK_HOURS = 24
MAX_ANSWER_CHARS = 80
# Bumped when the schema changes: an older database is re-seeded on first use.
SCHEMA_VERSION = 3


def db_path() -> Path:
    """Where the backend lives; BRIGHTLINE_BACKEND_DB overrides the default under var/."""
    return Path(os.environ.get("BRIGHTLINE_BACKEND_DB", str(DEFAULT_DB)))


SCHEMA = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, vip INTEGER NOT NULL DEFAULT 0,
    postcode TEXT NOT NULL
);
CREATE TABLE products (
    sku TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, category TEXT NOT NULL,
    warranty_months INTEGER NOT NULL, price REAL NOT NULL
);
CREATE TABLE orders (
    number TEXT PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
    status TEXT NOT NULL, placed_on TEXT NOT NULL, shipped_on TEXT, expected_on TEXT,
    delivered_on TEXT, carrier TEXT, tracking TEXT, total REAL NOT NULL,
    refund_status TEXT NOT NULL DEFAULT 'none', refund_amount REAL, refund_started_on TEXT,
    refunded_on TEXT, return_code TEXT
);
CREATE TABLE order_items (
    order_number TEXT NOT NULL REFERENCES orders(number),
    sku TEXT NOT NULL REFERENCES products(sku),
    quantity INTEGER NOT NULL
);
CREATE TABLE devices (
    serial TEXT PRIMARY KEY, sku TEXT NOT NULL REFERENCES products(sku),
    customer_id INTEGER NOT NULL REFERENCES customers(id), purchased_on TEXT NOT NULL
);
CREATE TABLE repairs (
    reference TEXT PRIMARY KEY, serial TEXT NOT NULL REFERENCES devices(serial),
    booked_on TEXT NOT NULL, pickup_on TEXT NOT NULL, under_warranty INTEGER NOT NULL
);
CREATE TABLE verification_failures (
    customer_id INTEGER NOT NULL REFERENCES customers(id), failed_at TEXT NOT NULL,
    answer_key TEXT NOT NULL
);
CREATE INDEX verification_failures_customer ON verification_failures (customer_id, failed_at);
CREATE INDEX verification_failures_answer ON verification_failures (answer_key, failed_at);
"""

PRODUCTS = [
    ("AUR-1", "Aurora Speaker", "speaker", 24, 129.0),
    ("AUR-M", "Aurora Mini", "speaker", 24, 59.0),
    ("PLS-1", "Pulse Soundbar", "speaker", 24, 249.0),
    ("NOV-1", "Nova Phone", "phone", 24, 499.0),
    ("HAL-1", "Halo Earbuds", "earbuds", 12, 89.0),
    ("BEA-1", "Beacon Router", "router", 36, 149.0),
    ("LUM-1", "Lumen Hub", "hub", 24, 99.0),
    ("GLW-1", "Glow Bulb", "bulb", 12, 19.0),
    ("SEN-1", "Sentry Doorbell", "doorbell", 24, 179.0),
]

# id, name, e-mail, VIP, postcode. The e-mail or the postcode is the second factor that proves
# an order or a device belongs to the person in the chat.
CUSTOMERS = [
    (1, "Maya Patel", "maya.patel@example.com", 0, "N1 9GU"),
    (2, "Jonas Weber", "jonas.weber@example.com", 1, "10115"),
    (3, "Aiko Tanaka", "aiko.tanaka@example.com", 0, "160-0022"),
    (4, "Liam O'Brien", "liam.obrien@example.com", 0, "D02 X285"),
]


def _d(today: date, days: int) -> str:
    return (today + timedelta(days=days)).isoformat()


def seed(path: Path | None = None, today: date | None = None) -> Path:
    """(Re)create the demo database with a fixed set of customers, orders and devices."""
    path = path or db_path()
    t = today or date.today()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    with con:
        con.executescript(SCHEMA)
        con.executemany("INSERT INTO products VALUES (?,?,?,?,?)", PRODUCTS)
        con.executemany("INSERT INTO customers VALUES (?,?,?,?,?)", CUSTOMERS)
        orders = [
            # number, customer, status, placed, shipped, expected, delivered, carrier, tracking,
            # total, refund_status, refund_amount, refund_started, refunded, return_code
            (
                "1001",
                1,
                "shipped",
                _d(t, -4),
                _d(t, -2),
                _d(t, 2),
                None,
                "DHL",
                "JD014600003827",
                129.0,
                "none",
                None,
                None,
                None,
                None,
            ),
            (
                "1002",
                2,
                "delivered",
                _d(t, -14),
                _d(t, -12),
                _d(t, -10),
                _d(t, -10),
                "UPS",
                "1Z999AA10123456784",
                499.0,
                "none",
                None,
                None,
                None,
                None,
            ),
            (
                "1003",
                3,
                "shipped",
                _d(t, -15),
                _d(t, -12),
                _d(t, -5),
                None,
                "DPD",
                "01234567890123",
                149.0,
                "none",
                None,
                None,
                None,
                None,
            ),
            (
                "1004",
                4,
                "processing",
                _d(t, -1),
                None,
                _d(t, 4),
                None,
                None,
                None,
                89.0,
                "none",
                None,
                None,
                None,
                None,
            ),
            (
                "1005",
                1,
                "returned",
                _d(t, -30),
                _d(t, -28),
                _d(t, -26),
                _d(t, -26),
                "DHL",
                "JD014600009911",
                249.0,
                "processing",
                249.0,
                _d(t, -3),
                None,
                "RMA-1005",
            ),
            (
                "1006",
                2,
                "delivered",
                _d(t, -50),
                _d(t, -48),
                _d(t, -45),
                _d(t, -45),
                "UPS",
                "1Z999AA10123459999",
                175.0,
                "none",
                None,
                None,
                None,
                None,
            ),
            (
                "1007",
                3,
                "cancelled",
                _d(t, -25),
                None,
                None,
                None,
                None,
                None,
                59.0,
                "refunded",
                59.0,
                _d(t, -25),
                _d(t, -20),
                None,
            ),
            (
                "1008",
                4,
                "out_for_delivery",
                _d(t, -3),
                _d(t, -1),
                _d(t, 0),
                None,
                "DHL",
                "JD014600004455",
                179.0,
                "none",
                None,
                None,
                None,
                None,
            ),
        ]
        con.executemany(f"INSERT INTO orders VALUES ({','.join('?' * 15)})", orders)
        items = [
            ("1001", "AUR-1", 1),
            ("1002", "NOV-1", 1),
            ("1003", "BEA-1", 1),
            ("1004", "HAL-1", 1),
            ("1005", "PLS-1", 1),
            ("1006", "LUM-1", 1),
            ("1006", "GLW-1", 4),
            ("1007", "AUR-M", 1),
            ("1008", "SEN-1", 1),
        ]
        con.executemany("INSERT INTO order_items VALUES (?,?,?)", items)
        devices = [
            ("SN100234", "AUR-1", 1, _d(t, -240)),
            ("SN482910", "NOV-1", 2, _d(t, -800)),
            ("SN300117", "NOV-1", 2, _d(t, -90)),
            ("SN555001", "BEA-1", 3, _d(t, -420)),
            ("SN777320", "HAL-1", 4, _d(t, -400)),
            ("SN640022", "PLS-1", 1, _d(t, -30)),
        ]
        con.executemany("INSERT INTO devices VALUES (?,?,?,?)", devices)
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    con.close()
    os.replace(tmp, path)
    return path


def connect() -> sqlite3.Connection:
    """Open the backend, seeding it on first use (and when its schema is out of date)."""
    path = db_path()
    if not path.exists():
        seed(path)
    con = sqlite3.connect(path)
    if con.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
        con.close()
        seed(path)
        con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    return con


@dataclass(frozen=True)
class Order:
    number: str
    customer_id: int
    customer_name: str
    customer_vip: bool
    status: str
    placed_on: date
    shipped_on: date | None
    expected_on: date | None
    delivered_on: date | None
    carrier: str | None
    tracking: str | None
    total: float
    refund_status: str
    refund_amount: float | None
    refund_started_on: date | None
    refunded_on: date | None
    return_code: str | None
    items: tuple[str, ...]

    @property
    def item_summary(self) -> str:
        return ", ".join(self.items)


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def get_order(number: str) -> Order | None:
    """The order with this number, or None."""
    with connect() as con:
        row = con.execute(
            "SELECT o.*, c.name AS customer_name, c.vip AS customer_vip FROM orders o "
            "JOIN customers c ON c.id = o.customer_id WHERE o.number = ?",
            (number,),
        ).fetchone()
        if row is None:
            return None
        items = tuple(
            f"{r['quantity']} x {r['name']}" if r["quantity"] > 1 else r["name"]
            for r in con.execute(
                "SELECT i.quantity, p.name FROM order_items i JOIN products p ON p.sku = i.sku "
                "WHERE i.order_number = ? ORDER BY p.name",
                (number,),
            )
        )
    return Order(
        number=row["number"],
        customer_id=row["customer_id"],
        customer_name=row["customer_name"],
        customer_vip=bool(row["customer_vip"]),
        status=row["status"],
        placed_on=date.fromisoformat(row["placed_on"]),
        shipped_on=_date(row["shipped_on"]),
        expected_on=_date(row["expected_on"]),
        delivered_on=_date(row["delivered_on"]),
        carrier=row["carrier"],
        tracking=row["tracking"],
        total=row["total"],
        refund_status=row["refund_status"],
        refund_amount=row["refund_amount"],
        refund_started_on=_date(row["refund_started_on"]),
        refunded_on=_date(row["refunded_on"]),
        return_code=row["return_code"],
        items=items,
    )


def cancel_order(number: str, today: date | None = None) -> None:
    """Cancel an order that has not shipped yet and start its refund."""
    t = (today or date.today()).isoformat()
    with connect() as con:
        cur = con.execute(
            "UPDATE orders SET status='cancelled', refund_status='processing', "
            "refund_amount=total, refund_started_on=? WHERE number=? AND status='processing'",
            (t, number),
        )
        if cur.rowcount != 1:
            raise ValueError(f"order {number} cannot be cancelled")


def start_return(number: str) -> str:
    """Open a return for a delivered order; returns the return code (RMA)."""
    code = f"RMA-{number}"
    with connect() as con:
        con.execute(
            "UPDATE orders SET return_code=? WHERE number=? AND return_code IS NULL", (code, number)
        )
    return code


@dataclass(frozen=True)
class Device:
    serial: str
    product: str
    category: str
    customer_id: int
    customer_name: str
    purchased_on: date
    warranty_until: date

    def under_warranty(self, today: date | None = None) -> bool:
        return (today or date.today()) <= self.warranty_until


def _add_months(d: date, months: int) -> date:
    month = d.month - 1 + months
    year, month = d.year + month // 12, month % 12 + 1
    day = min(
        d.day, [31, 29 if year % 4 == 0 else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    )
    return date(year, month, day)


def get_device(serial: str) -> Device | None:
    """The registered device with this serial number, or None."""
    with connect() as con:
        row = con.execute(
            "SELECT d.serial, d.purchased_on, p.name, p.category, p.warranty_months, "
            "d.customer_id, c.name AS cname FROM devices d JOIN products p ON p.sku = d.sku "
            "JOIN customers c ON c.id = d.customer_id "
            "WHERE d.serial = ?",
            (serial,),
        ).fetchone()
    if row is None:
        return None
    bought = date.fromisoformat(row["purchased_on"])
    return Device(
        serial=row["serial"],
        product=row["name"],
        category=row["category"],
        customer_id=row["customer_id"],
        customer_name=row["cname"],
        purchased_on=bought,
        warranty_until=_add_months(bought, row["warranty_months"]),
    )


def product_names() -> list[str]:
    """Every product in the catalogue, by name."""
    with connect() as con:
        return [r["name"] for r in con.execute("SELECT name FROM products ORDER BY name")]


def book_repair(serial: str, today: date | None = None) -> tuple[str, date, bool]:
    """Book a courier pickup for a repair: (reference, pickup day, covered by warranty)."""
    t = today or date.today()
    device = get_device(serial)
    if device is None:
        raise ValueError(f"unknown serial number {serial}")
    pickup = t + timedelta(days=2)
    while pickup.weekday() >= 5:  # couriers collect on weekdays
        pickup += timedelta(days=1)
    with connect() as con:
        n = con.execute("SELECT COUNT(*) FROM repairs").fetchone()[0]
        reference = f"R-{2001 + n}"
        covered = device.under_warranty(t)
        con.execute(
            "INSERT INTO repairs VALUES (?,?,?,?,?)",
            (reference, serial, t.isoformat(), pickup.isoformat(), int(covered)),
        )
    return reference, pickup, covered


# --- the read-only overview the agents' console shows (rasa_addons/action_server.py) -------


def customer_overview(customer_id: int, today: date | None = None) -> dict[str, Any] | None:
    """A customer's orders, devices (with warranty) and repairs, newest first, as JSON-ready
    values; None for an unknown customer. Read-only: the console's customer profile shows it,
    so agents see the same data the bot uses, without a second copy of it."""
    customer = get_customer(customer_id)
    if customer is None:
        return None
    t = today or date.today()
    with connect() as con:
        numbers = [
            r["number"]
            for r in con.execute(
                "SELECT number FROM orders WHERE customer_id = ? ORDER BY placed_on DESC, number",
                (customer_id,),
            )
        ]
        serials = [
            r["serial"]
            for r in con.execute(
                "SELECT serial FROM devices WHERE customer_id = ? ORDER BY purchased_on DESC",
                (customer_id,),
            )
        ]
        repairs = [
            {
                "reference": r["reference"],
                "serial": r["serial"],
                "booked_on": r["booked_on"],
                "pickup_on": r["pickup_on"],
                "under_warranty": bool(r["under_warranty"]),
            }
            for r in con.execute(
                "SELECT r.* FROM repairs r JOIN devices d ON d.serial = r.serial "
                "WHERE d.customer_id = ? ORDER BY r.booked_on DESC, r.reference DESC",
                (customer_id,),
            )
        ]
    orders = []
    for number in numbers:
        order = get_order(number)
        if order is None:
            continue
        orders.append(
            {
                "number": order.number,
                "status": order.status,
                "placed_on": order.placed_on.isoformat(),
                "expected_on": _iso(order.expected_on),
                "delivered_on": _iso(order.delivered_on),
                "total": order.total,
                "items": list(order.items),
                "refund_status": order.refund_status,
            }
        )
    devices = []
    for serial in serials:
        device = get_device(serial)
        if device is None:
            continue
        devices.append(
            {
                "serial": device.serial,
                "product": device.product,
                "purchased_on": device.purchased_on.isoformat(),
                "warranty_until": device.warranty_until.isoformat(),
                "under_warranty": device.under_warranty(t),
            }
        )
    return {
        "customer": {"id": customer.id, "name": customer.name, "vip": customer.vip},
        "orders": orders,
        "devices": devices,
        "repairs": repairs,
    }


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


# --- customers and their second factor ------------------------------------------------------


@dataclass(frozen=True)
class Customer:
    id: int
    name: str
    vip: bool


def get_customer(customer_id: int) -> Customer | None:
    """The customer with this id, or None."""
    with connect() as con:
        row = con.execute(
            "SELECT id, name, vip FROM customers WHERE id = ?", (customer_id,)
        ).fetchone()
    return Customer(row["id"], row["name"], bool(row["vip"])) if row else None


def _postcode(value: str) -> str:
    return "".join(ch for ch in value.upper() if ch.isalnum())


def _since(hours: int, now: datetime | None) -> str:
    return ((now or datetime.now(timezone.utc)) - timedelta(hours=hours)).isoformat()


def _answer_keys(kind: str, candidates: list[str]) -> list[str]:
    """How a wrong answer is remembered: hashed, never the answer itself."""
    return [hashlib.sha256(f"{kind}:{c}".encode()).hexdigest()[:24] for c in candidates]


def _candidates(text: str) -> tuple[str, list[str]]:
    """("email", [address]) when the answer has an @, else ("postcode", [the last part that
    has a digit, and it with the part before it when that has a digit too]), normalised."""
    words = text.split()
    if "@" in text:
        emails = [w.strip(".,;:!?<>()\"'").casefold() for w in words if "@" in w]
        return "email", emails[-1:]
    with_digit = [i for i, w in enumerate(words) if any(ch.isdigit() for ch in w)]
    if not with_digit:
        return "postcode", [_postcode(text)] if _postcode(text) else []
    last = with_digit[-1]
    found = [_postcode(words[last])]
    if last > 0 and any(ch.isdigit() for ch in words[last - 1]):
        found.append(_postcode(words[last - 1] + words[last]))
    return "postcode", [c for c in found if c]


def check_second_factor(customer_id: int, answer: str, now: datetime | None = None) -> str:
    """Whether ``answer`` is the customer's e-mail address or postcode: "ok", "wrong", or
    "postcode_locked" (too many wrong answers for this customer lately; the e-mail address is
    still checked). Spaces, dashes and letter case do not matter; an answer is one kind of
    guess (with an @ it is an e-mail address). A wrong answer is counted against the customer
    and against the answer itself."""
    text = answer.strip()[:MAX_ANSWER_CHARS]
    kind, candidates = _candidates(text)
    keys = _answer_keys(kind, candidates)
    since = _since(VERIFICATION_LOCK_HOURS, now)
    with connect() as con:
        row = con.execute(
            "SELECT email, postcode FROM customers WHERE id = ?", (customer_id,)
        ).fetchone()
        if row is None:
            return "wrong"
        if kind == "postcode":
            failures = con.execute(
                "SELECT COUNT(DISTINCT failed_at) FROM verification_failures "
                "WHERE customer_id = ? AND failed_at > ?",
                (customer_id, since),
            ).fetchone()[0]
            if failures >= MAX_VERIFICATION_FAILURES:
                return "postcode_locked"
        burnt = any(
            con.execute(
                "SELECT COUNT(*) FROM verification_failures WHERE answer_key = ? AND failed_at > ?",
                (key, since),
            ).fetchone()[0]
            >= MAX_ANSWER_FAILURES
            for key in keys
        )
        right = row["email"].casefold() if kind == "email" else _postcode(row["postcode"])
        if not burnt and right in candidates:
            return "ok"
        at = (now or datetime.now(timezone.utc)).isoformat()
        con.executemany(
            "INSERT INTO verification_failures VALUES (?, ?, ?)",
            [(customer_id, at, key) for key in keys or _answer_keys(kind, [""])],
        )
    return "wrong"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m actions.backend", description=__doc__)
    parser.add_argument("command", choices=["seed"], help="seed: (re)create the demo data")
    args = parser.parse_args()
    if args.command == "seed":
        print(f"demo backend seeded at {seed()}")


if __name__ == "__main__":
    main()
